"""Body mask and a normalised z position found without a trained body-part regressor.

Paper 1 (sec. 2.2) takes z from an unsupervised body-part regressor trained on its own cohort. We have no such
weights, so the substitute is anatomical: z is measured between two landmarks of the lung mask, the lung base
(most inferior lung voxel, 0) and the lung apex (most superior lung voxel, 1), in patient coordinates (LPS,
+z superior). It is defined only when both landmarks lie inside the scan (the lungs must not touch the first or
last slice); otherwise it is reported as unavailable rather than guessed. anatomy/landmarks.py fits the same scale
to other landmarks (liver dome, aortic arch, vertebrae) when a scan shows only one lung end. See docs/PRIORS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

AIR_HU = -400.0  # below this: air or lung (lung parenchyma is about -850 HU)
PURE_GAS_HU = -940.0  # a component whose MEDIAN is this dark is gas (outside air, bowel gas, airway), not lung;
# lung parenchyma has a median near -850 HU (the mean is pulled up by the partial-volume rim of gas regions)


def ct_array(ct: sitk.Image) -> np.ndarray:
    """CT in HU as a float32 numpy array [z, y, x]."""
    return sitk.GetArrayFromImage(ct).astype(np.float32, copy=False)


def median_by_label(values: np.ndarray, labels: np.ndarray, index) -> np.ndarray:
    """The median of ``values`` over each label in ``index``, as ndimage.median(values, labels, index), without
    sorting the whole volume (ndimage sorts every voxel: 35 s on a 512 x 512 x 300 CT): each label's voxels are
    gathered from its bounding box and partitioned."""
    index = np.asarray(index, np.int64).reshape(-1)
    if index.size == 0:
        return np.zeros(0)
    boxes = ndimage.find_objects(labels, max_label=int(index.max()))
    out = np.full(index.size, np.nan)
    for i, label in enumerate(index):
        box = boxes[label - 1] if label >= 1 else None
        if box is not None:
            out[i] = np.median(values[box][labels[box] == label], overwrite_input=True)  # a gathered copy
    return out


def label_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of every label 0..n (int64), slab by slab: np.bincount of the whole volume would first copy the
    labels to int64 (630 MB on a 512 x 512 x 300 CT), ndimage.sum_labels makes a float64 copy."""
    sizes = np.zeros(n + 1, np.int64)
    step = max(1, (1 << 22) // max(1, labels[0].size))  # ~4 M voxels per slab
    for start in range(0, labels.shape[0], step):
        sizes += np.bincount(labels[start:start + step].ravel(), minlength=n + 1)
    return sizes


def outside_air(hu: np.ndarray) -> np.ndarray:
    """Air outside the patient: dark components that touch the scan border and are pure gas (median HU).

    Lungs also touch the border of a tight crop, but their mean HU (parenchyma, vessels) is well above pure air.
    """
    labels, n = ndimage.label(hu < AIR_HU)
    if n == 0:
        return np.zeros(hu.shape, bool)
    border = np.zeros(n + 1, bool)
    for axis in range(3):
        for index in (0, -1):
            border[np.unique(np.take(labels, index, axis=axis))] = True
    outside = np.zeros(n + 1, bool)
    touching = np.nonzero(border)[0]
    touching = touching[touching > 0]
    if touching.size:
        outside[touching] = median_by_label(hu, labels, touching) < PURE_GAS_HU
    outside[0] = False
    return outside[labels]


def body_mask(ct: sitk.Image, hu: np.ndarray | None = None) -> sitk.Image:
    """The patient's body: the largest connected region that is not outside air (table and clothes drop out as
    separate, smaller regions). uint8 on the CT grid."""
    hu = ct_array(ct) if hu is None else hu
    labels, n = ndimage.label(~outside_air(hu))
    mask = np.zeros(hu.shape, np.uint8)
    if n:
        sizes = label_sizes(labels, n)
        sizes[0] = 0
        mask[labels == int(np.argmax(sizes))] = 1
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(ct)
    return image


@dataclass(frozen=True)
class LungLandmarks:
    """World z (mm, LPS +z superior) of the lung base and apex, and whether each lies inside the scan."""

    base_z: float
    apex_z: float
    base_in_scan: bool
    apex_in_scan: bool

    @property
    def complete(self) -> bool:
        return self.base_in_scan and self.apex_in_scan and self.apex_z > self.base_z

    def why_incomplete(self) -> str:
        missing = [name for name, ok in (("lung base", self.base_in_scan), ("lung apex", self.apex_in_scan)) if not ok]
        return (f"normalised z needs the lung apex and base inside the scan; the lungs reach the edge of the scan "
                f"({', '.join(missing)} not imaged)")


def world_points(image: sitk.Image, index_zyx: np.ndarray) -> np.ndarray:
    """(n, 3) numpy indices [z, y, x] -> (n, 3) LPS world points (mm)."""
    index_xyz = np.asarray(index_zyx, np.float64)[:, ::-1]
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (index_xyz * np.asarray(image.GetSpacing())) @ direction.T


def points_z_extent(image: sitk.Image, index_zyx: np.ndarray) -> tuple[float, float, bool, bool]:
    """Lowest and highest world z of the voxels ``index_zyx`` of ``image``, and whether the scan's first/last slice
    cuts them below / above: a voxel is "at the edge" if it is the first or last along any image axis whose direction
    has a z component."""
    z = world_points(image, index_zyx)[:, 2]
    direction = np.array(image.GetDirection()).reshape(3, 3)
    size_xyz = image.GetSize()
    low_cut = high_cut = False
    for axis in range(3):
        dz = direction[2, axis]
        if abs(dz) < 1e-6:
            continue
        column = index_zyx[:, 2 - axis]
        first, last = column.min() == 0, column.max() == size_xyz[axis] - 1
        low, high = (first, last) if dz > 0 else (last, first)
        low_cut |= bool(low)
        high_cut |= bool(high)
    return float(z.min()), float(z.max()), low_cut, high_cut


def lung_landmarks(lung: sitk.Image) -> LungLandmarks:
    """Lung base and apex (world z) from a lung mask; whether the scan's first/last slice cuts the lungs."""
    array = sitk.GetArrayViewFromImage(lung) != 0
    if not array.any():
        raise ValueError("empty lung mask")
    low_z, high_z, low_cut, high_cut = points_z_extent(lung, np.argwhere(array))
    return LungLandmarks(low_z, high_z, not low_cut, not high_cut)


def normalised_z(z_mm: np.ndarray, landmarks: LungLandmarks) -> np.ndarray:
    """0 at the lung base, 1 at the apex; below the base negative, above the apex > 1 (not clipped)."""
    return (np.asarray(z_mm, np.float64) - landmarks.base_z) / (landmarks.apex_z - landmarks.base_z)
