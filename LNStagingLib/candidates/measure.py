"""Per-instance measurements for the candidate table: centroid (LPS mm), volume (ml), short axis (mm), SUVmax.

Short axis, our definition (RECIST-like, on the image as acquired): take the "axial" slices, i.e. slices normal to
the image axis most aligned with the patient's superior axis; in the slice with the largest area of the instance,
compute the principal axes of its voxel centres in physical mm (PCA); the short axis is the extent of the instance
along the minor principal axis, voxel centre to voxel centre plus one voxel's width along that axis. For a disc of
diameter D sampled finely this gives D; for an ellipse, its minor diameter.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..io.resample import require_same_grid
from ..results import Candidate


def axial_axis(image: sitk.Image) -> int:
    """numpy axis (0 = z, 1 = y, 2 = x) whose physical direction is closest to the patient's S axis."""
    direction = np.array(image.GetDirection()).reshape(3, 3)  # column i = physical direction of index axis i
    index_axis = int(np.argmax(np.abs(direction[2, :])))  # ITK index axis (x, y, z order)
    return 2 - index_axis


def short_axis_mm(mask: np.ndarray, image: sitk.Image) -> float:
    """Short axis (mm) of a binary instance ``mask`` [z, y, x] on ``image``'s grid (definition in the module doc)."""
    if not mask.any():
        return 0.0
    axis = axial_axis(image)
    areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    best = int(np.argmax(areas))
    index = np.argwhere(np.take(mask, best, axis=axis))  # [n, 2] in the remaining numpy axes
    in_plane = [a for a in range(3) if a != axis]
    spacing = np.array(image.GetSpacing())[::-1]  # numpy order
    direction = np.array(image.GetDirection()).reshape(3, 3)[:, ::-1]  # columns in numpy axis order
    basis = direction[:, in_plane] * spacing[in_plane]  # physical step (mm) of each in-plane numpy axis
    points = index @ basis.T  # [n, 3] physical offsets
    if len(points) == 1:
        minor = basis[:, 0] / np.linalg.norm(basis[:, 0])
    else:
        centred = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        minor = vt[1] if len(vt) > 1 else vt[0]
    projections = points @ minor
    voxel_width = float(np.sum(np.abs(basis.T @ minor)))
    return float(projections.max() - projections.min() + voxel_width)


def measure_instances(labels: sitk.Image, pet: sitk.Image | None = None, source: str = "stage1") -> list[Candidate]:
    """One Candidate per non-zero label: id = label value, centroid in LPS mm, volume, short axis, SUVmax and SUVpeak
    (the mean SUV in a 1 ml sphere around the instance's hottest voxel; PET on the same grid, else NaN)."""
    from .pet_lesions import suv_peak_at

    labels = sitk.Cast(labels, sitk.sitkUInt32)
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(labels)
    pet_array = None
    if pet is not None:
        pet32 = sitk.Cast(require_same_grid(pet, labels, "PET"), sitk.sitkFloat32)
        pet_array = sitk.GetArrayViewFromImage(pet32)
    array = sitk.GetArrayViewFromImage(labels)
    candidates = []
    for label in sorted(shape.GetLabels()):
        bbox = shape.GetBoundingBox(label)  # x, y, z start then sizes (index order)
        crop = tuple(slice(bbox[i], bbox[i] + bbox[i + 3]) for i in (2, 1, 0))
        region = array[crop] == label
        cropped = sitk.RegionOfInterest(labels, bbox[3:], bbox[:3])
        suv_max = peak = float("nan")
        if pet_array is not None:  # SUVmax, and SUVpeak around the voxel that holds it, from the instance's box
            inside = np.where(region, pet_array[crop], -np.inf)
            hottest = np.unravel_index(int(np.argmax(inside)), inside.shape)
            suv_max = float(inside[hottest])
            peak = float(suv_peak_at(pet_array, np.add(hottest, [c.start for c in crop]), labels.GetSpacing())[0])
        candidates.append(Candidate(
            id=int(label),
            centroid_lps=shape.GetCentroid(label),
            volume_ml=shape.GetPhysicalSize(label) / 1000.0,
            short_axis_mm=short_axis_mm(region, cropped),
            suv_max=suv_max,
            suv_peak=peak,
            source=source,
        ))
    return candidates
