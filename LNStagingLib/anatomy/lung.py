"""Lung mask from CT without trained weights (paper 1 uses a P-HNN; we use thresholds and components).

Steps, on the CT reoriented to LPS so that index axis 0 is inferior->superior:
1. air inside the body (HU < -400; outside air removed by body.body_mask);
2. trachea and main bronchi removed: a dark, round, midline 2D region in the most superior slice that has one
   seeds a 3D region growing on pure-air HU, with the threshold lowered until the airway stops leaking into
   the lung (the classic Hu et al. 2001 scheme);
3. components that are pure gas (median HU) (bowel gas, stomach gas, an isolated airway) dropped;
4. the two largest remaining components kept (the second only if at least 5 % of the first: the lungs may
   also be joined at the anterior junction), holes filled slice by slice (vessels).
Good enough for the lung extent used by the spatial priors; not a clinical lung segmentation.
"""

from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import AnatomyError
from ..progress import Progress
from .body import AIR_HU, PURE_GAS_HU, body_mask, label_sizes, median_by_label

log = logging.getLogger(__name__)

AIRWAY_HU = -950.0
MAX_AIRWAY_ML = 250.0  # trachea + main bronchi are well below this; more means the growing leaked into a lung
SECOND_LUNG_FRACTION = 0.05


def _to_lps(image: sitk.Image) -> tuple[sitk.Image, str]:
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    return (image if code == "LPS" else sitk.DICOMOrient(image, "LPS")), code  # no copy of an LPS-ordered CT


def _airway(image: sitk.Image, hu: np.ndarray, air: np.ndarray) -> np.ndarray:
    """Trachea + main bronchi as a boolean array, or all False if no airway seed is found (e.g. abdomen scan).
    ``hu`` is the array of ``image`` (the region growing runs on the image itself, not on a copy)."""
    spacing_xyz = image.GetSpacing()
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    pixel_cm2 = spacing_xyz[0] * spacing_xyz[1] / 100.0
    slices = np.nonzero(air.any(axis=(1, 2)))[0]
    if slices.size == 0:
        return np.zeros(hu.shape, bool)
    top = int(slices.max())
    x_centre = np.nonzero(air.any(axis=(0, 1)))[0].mean() if air.any() else hu.shape[2] / 2
    dark, n = ndimage.label((hu[top] < AIRWAY_HU) & air[top])
    best, best_score = None, 0.0
    for label, box in enumerate(ndimage.find_objects(dark), start=1):
        region = dark[box] == label
        area = region.sum() * pixel_cm2
        roundness = region.sum() / region.size
        cy, cx = ndimage.center_of_mass(region)
        off_mid_mm = abs(box[1].start + cx - x_centre) * spacing_xyz[0]
        if 1.0 <= area <= 8.0 and roundness > 0.5 and off_mid_mm < 40.0 and roundness > best_score:
            best, best_score = (top, int(box[0].start + cy), int(box[1].start + cx)), roundness
    if best is None:
        return np.zeros(hu.shape, bool)
    if not dark[best[1], best[2]]:  # centre of mass outside a crescent-shaped region: take any of its pixels
        ys, xs = np.nonzero(dark == dark[best[1]].max())
        best = (top, int(ys[0]), int(xs[0]))
    for upper in np.arange(AIRWAY_HU, -1001.0, -15.0):
        grown = sitk.GetArrayFromImage(sitk.ConnectedThreshold(image, seedList=[best[::-1]], lower=-3000.0,
                                                                upper=float(upper))) != 0
        if grown.sum() * voxel_ml <= MAX_AIRWAY_ML:
            return ndimage.binary_dilation(grown, iterations=1) & air
    log.info("airway region growing leaked into the lungs at every threshold; airways kept in the lung mask")
    return np.zeros(hu.shape, bool)


def lung_mask(ct: sitk.Image, progress: Progress | None = None) -> sitk.Image:
    """Both lungs (uint8, 1 = lung) on the CT grid. Raises AnatomyError when the CT shows no lung."""
    progress = progress or Progress()
    progress.step(0.0, "lung mask: body")
    lps, code = _to_lps(ct)
    if lps.GetPixelID() != sitk.sitkFloat32:  # the pipeline's CT is float32 already: no copy of it then
        lps = sitk.Cast(lps, sitk.sitkFloat32)
    hu = sitk.GetArrayViewFromImage(lps)  # a view of a named image that lives until the end
    body_image = body_mask(lps, hu)  # kept alive: an array view must not outlive its image
    body = sitk.GetArrayViewFromImage(body_image) != 0
    air = (hu < AIR_HU) & body
    del body, body_image
    progress.step(0.3, "lung mask: airways")
    air &= ~_airway(lps, hu, air)
    progress.step(0.6, "lung mask: components")
    labels, n = ndimage.label(air)
    if n == 0:
        raise AnatomyError("No air-filled region inside the body: this CT shows no lung (lung-based priors "
                           "need a scan that includes at least the lung bases).")
    index = np.arange(1, n + 1)
    sizes = label_sizes(labels, n)[1:].astype(np.float64)  # as ndimage.sum_labels(air, labels, index)
    min_voxels = 5.0 * 1000.0 / float(np.prod(lps.GetSpacing()))  # 5 mL: smaller is not a lung
    sizes[sizes < min_voxels] = 0
    large = index[sizes > 0]
    if large.size:
        gas = large[median_by_label(hu, labels, large) < PURE_GAS_HU]  # bowel/stomach gas, isolated airways
        sizes[gas - 1] = 0
    order = np.argsort(sizes)[::-1]
    keep = [order[0]] if sizes[order[0]] >= min_voxels else []
    if keep and n > 1 and sizes[order[1]] >= max(SECOND_LUNG_FRACTION * sizes[order[0]], min_voxels):
        keep.append(order[1])
    if not keep:
        raise AnatomyError("No lung-sized air region inside the body: this CT shows no lung (lung-based priors "
                           "need a scan that includes at least the lung bases).")
    lung = np.isin(labels, np.asarray(keep) + 1)
    progress.step(0.8, "lung mask: filling vessels")
    for z in np.nonzero(lung.any(axis=(1, 2)))[0]:
        lung[z] = ndimage.binary_fill_holes(lung[z])
    out = sitk.GetImageFromArray(lung.astype(np.uint8))
    out.CopyInformation(lps)
    if code != "LPS":
        out = sitk.DICOMOrient(out, code)
    out.CopyInformation(ct)  # same grid; removes round-off from the reorientation
    progress.step(1.0, "lung mask done")
    return out
