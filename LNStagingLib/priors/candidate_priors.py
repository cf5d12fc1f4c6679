"""Per-candidate spatial priors s of paper 1 (sec. 2.2), one row per candidate, ready for the GNN.

Columns (PRIOR_NAMES, fixed order):
- x_norm, y_norm: LPS x and y of the candidate centre normalised by the lung mask's extent (min -> 0,
  max -> 1, clipped to [0, 1] as the paper uses the extent as cutoffs). x: patient right 0 -> left 1;
  y: anterior 0 -> posterior 1.
- z_norm: 0 at the lung base, 1 at the lung apex (the substitute for the body-part regressor). When the scan shows
  only one of them, the scale is fitted to the landmarks it does show (liver dome, aortic arch, vertebral end plates
  from an organ label map; anatomy/landmarks.py); ``PriorTable.z_source`` names the landmarks used.
- tumor_distance_mm: distance from the candidate centre to the tumour boundary (Maurer distance map; 0 inside).
- tumor_elevation_deg, tumor_azimuth_deg: direction from the tumour centre (or the nearest point of its
  axial centreline) to the candidate in LPS: elevation = angle above the axial plane (+ superior),
  azimuth = angle in the axial plane from +x (patient left) towards +y (posterior), in (-180, 180].
A prior that cannot be computed (no tumour mask; too few landmarks for z) is NaN in `values`,
absent from the row dicts, and explained in `missing`: it is never invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..anatomy.body import world_points
from ..anatomy.landmarks import find_landmarks, fit_z_frame
from ..anatomy.lung import lung_mask as compute_lung_mask
from ..errors import AnatomyError, GeometryError
from ..io.resample import require_same_grid
from ..progress import Progress
from .attention import signed_distance_mm

PRIOR_NAMES: tuple[str, ...] = ("x_norm", "y_norm", "z_norm", "tumor_distance_mm", "tumor_elevation_deg",
                                "tumor_azimuth_deg")
TUMOR_PRIORS = PRIOR_NAMES[3:]


@dataclass
class PriorTable:
    names: tuple[str, ...]
    values: np.ndarray  # (n_candidates, len(names)) float64, NaN where missing
    missing: dict[str, str] = field(default_factory=dict)  # prior name -> why it is absent
    lung_extent_mm: dict[str, tuple[float, float]] = field(default_factory=dict)
    z_source: str = ""  # the landmarks z_norm rests on ("lung base, lung apex", "lung base, liver dome", ...)

    def rows(self) -> list[dict[str, float]]:
        """One dict per candidate, without the missing priors."""
        present = [i for i, name in enumerate(self.names) if name not in self.missing]
        return [{self.names[i]: float(row[i]) for i in present} for row in self.values]


def _tumor_centreline(tumor: sitk.Image) -> np.ndarray:
    """Centroid (LPS mm) of the tumour in each image slice along the axis closest to patient z: (k, 3)."""
    array = sitk.GetArrayViewFromImage(tumor) != 0
    direction = np.array(tumor.GetDirection()).reshape(3, 3)
    axis_xyz = int(np.argmax(np.abs(direction[2])))  # image axis most aligned with S
    axis_np = 2 - axis_xyz
    points = []
    for k in np.nonzero(array.any(axis=tuple(a for a in range(3) if a != axis_np)))[0]:
        index = np.argwhere(np.take(array, k, axis=axis_np))
        full = np.insert(index.astype(np.float64), axis_np, k, axis=1)
        points.append(world_points(tumor, full).mean(axis=0))
    return np.asarray(points)


def _distance_box(inside: np.ndarray, image: sitk.Image, centres: np.ndarray) -> tuple[slice, slice, slice]:
    """SimpleITK (x, y, z) slices of the box holding the tumour with one voxel of background around it and every
    voxel the linear interpolation at a candidate centre reads: the tumour distance map on this box has the same
    values there as on the whole CT, for a fraction of the time and memory."""
    index = np.argwhere(inside)[:, ::-1]  # x, y, z
    lo, hi = index.min(axis=0) - 1, index.max(axis=0) + 2
    for point in centres:
        continuous = np.asarray(image.TransformPhysicalPointToContinuousIndex(tuple(point)))
        lo = np.minimum(lo, np.floor(continuous).astype(int))
        hi = np.maximum(hi, np.floor(continuous).astype(int) + 2)
    size = np.asarray(image.GetSize())
    lo, hi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _lung_priors(ct: sitk.Image, centres: np.ndarray, lung: sitk.Image | None, organs, organ_values,
                 values: np.ndarray, missing: dict[str, str], progress: Progress) -> tuple[dict, str]:
    """Fill the lung-normalised x, y, z columns: (lung extent, z source). AnatomyError when the scan shows no lung."""
    if lung is None:
        lung = compute_lung_mask(ct, progress)
    lung_index = np.argwhere(sitk.GetArrayViewFromImage(lung) != 0)
    if lung_index.size == 0:
        raise AnatomyError("The lung mask is empty: x, y priors need the lungs (or at least their bases) in the scan.")
    lung_points = world_points(lung, lung_index)
    low, high = lung_points.min(axis=0), lung_points.max(axis=0)
    for column, axis in ((0, 0), (1, 1)):
        values[:, column] = np.clip((centres[:, axis] - low[axis]) / max(high[axis] - low[axis], 1e-6), 0.0, 1.0)
    frame = fit_z_frame(find_landmarks(lung, organs, organ_values))
    extent = {"x": (float(low[0]), float(high[0])), "y": (float(low[1]), float(high[1]))}
    z_source = ""
    if isinstance(frame, str):
        missing["z_norm"] = frame
    else:
        values[:, 2] = frame.normalise(centres[:, 2])
        extent["z"] = (frame.base_z, frame.apex_z)
        z_source = frame.source
    return extent, z_source


def candidate_priors(ct: sitk.Image, centres_lps: np.ndarray | list, tumor: sitk.Image | None = None,
                     lung: sitk.Image | None = None, tumor_reference: str = "centre",
                     progress: Progress | None = None, organs: sitk.Image | None = None,
                     organ_values: dict[str, tuple[int, ...]] | None = None) -> PriorTable:
    """The spatial priors of every candidate of one case (see the module docstring for the columns).

    centres_lps: (n, 3) candidate centres in LPS mm. tumor / lung: masks on the CT grid (lung computed from the
    CT when None). tumor_reference: "centre" (tumour centroid) or "centreline" (nearest per-slice centroid,
    for elongated tumours such as oesophageal ones). organs + organ_values: an organ label map (any grid) and the
    values of its landmark organs (anatomy.landmarks.landmark_values), so that z is defined on partial scans.
    """
    progress = progress or Progress()
    centres = np.asarray(centres_lps, np.float64).reshape(-1, 3)
    tumor = require_same_grid(tumor, ct, "tumour mask") if tumor is not None else None
    lung = require_same_grid(lung, ct, "lung mask") if lung is not None else None
    if tumor_reference not in ("centre", "centreline"):
        raise ValueError("tumor_reference must be 'centre' or 'centreline'")
    for point in centres:
        index = ct.TransformPhysicalPointToContinuousIndex(tuple(point))
        if any(i < -0.5 or i > n - 0.5 for i, n in zip(index, ct.GetSize())):
            raise GeometryError(f"Candidate centre {tuple(round(p, 1) for p in point)} (LPS mm) lies outside the CT; "
                                "candidates and CT must share a frame of reference (LPS coordinates).")
    values = np.full((len(centres), len(PRIOR_NAMES)), np.nan)
    missing: dict[str, str] = {}

    progress.step(0.0, "priors: lung mask")
    z_source = ""
    try:
        extent, z_source = _lung_priors(ct, centres, lung, organs, organ_values, values, missing,
                                        progress.sub(0.0, 0.6))
    except AnatomyError as error:  # a scan without lungs (a limb, the pelvis) still has its tumour priors
        missing.update({name: str(error) for name in PRIOR_NAMES[:3]})
        extent = {}

    progress.step(0.7, "priors: tumour")
    tumor_array = None if tumor is None else sitk.GetArrayViewFromImage(tumor)
    if tumor_array is None or not tumor_array.any():
        reason = "no tumour mask given" if tumor is None else "the tumour mask is empty"
        missing.update({name: reason for name in TUMOR_PRIORS})
    else:
        box = _distance_box(tumor_array != 0, tumor, centres)
        tumor_box = tumor[box]  # named: the crop must live as long as the distance map made from it
        distance = signed_distance_mm(sitk.Cast(tumor_box != 0, sitk.sitkUInt8))
        values[:, 3] = [max(distance.EvaluateAtPhysicalPoint(tuple(p), sitk.sitkLinear), 0.0) for p in centres]
        if tumor_reference == "centre":
            origins = np.repeat(world_points(tumor, np.argwhere(tumor_array != 0)).mean(axis=0)[None], len(centres), 0)
        else:
            line = _tumor_centreline(tumor)
            nearest = np.argmin(((centres[:, None, :] - line[None, :, :]) ** 2).sum(-1), axis=1)
            origins = line[nearest]
        v = centres - origins
        values[:, 4] = np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1])))
        values[:, 5] = np.degrees(np.arctan2(v[:, 1], v[:, 0]))
    progress.step(1.0, "priors done")
    return PriorTable(PRIOR_NAMES, values, missing, extent, z_source)
