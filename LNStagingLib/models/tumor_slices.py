"""The nine 2D views of the primary tumour that the patient-level model reads (paper 2, sec. III-B).

In each anatomical plane (axial, coronal, sagittal, in world LPS coordinates, whatever the CT's direction), the
three slices with the largest tumour area are chosen (equal areas: the slice nearer the tumour centroid), and a square patch centred on the tumour is sampled
from the CT and the tumour mask. Areas are measured on the same LPS-aligned grid the patches are sampled on,
so "largest" refers to what the network sees.

Patch orientation (display convention): axial rows anterior->posterior, columns right->left; coronal and
sagittal rows superior->inferior, columns right->left (coronal) and anterior->posterior (sagittal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import AnatomyError

# plane name -> the LPS axis (0 = x/L, 1 = y/P, 2 = z/S) the plane is perpendicular to
PLANES = (("axial", 2), ("coronal", 1), ("sagittal", 0))


@dataclass(frozen=True)
class TumorSlices:
    images: np.ndarray  # (n, size, size) float32, CT in HU
    masks: np.ndarray  # (n, size, size) uint8 tumour mask
    planes: tuple[str, ...]  # plane of each slice
    positions_mm: tuple[float, ...]  # LPS coordinate of each slice along its plane's normal axis
    areas_mm2: tuple[float, ...]  # tumour area on each slice
    center_mm: tuple[float, float, float]  # LPS point the patches are centred on (tumour centroid)


def tumor_bounds_mm(tumor: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower corner, upper corner, centroid) of the tumour mask in LPS mm (voxel extents included)."""
    binary = sitk.Cast(tumor != 0, sitk.sitkUInt8)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(binary)
    if not stats.HasLabel(1):
        raise AnatomyError("The tumour mask is empty: the patient-level model needs the primary tumour contour.")
    box = stats.GetBoundingBox(1)
    start, size = np.array(box[:3], float), np.array(box[3:], float)
    corners = [binary.TransformContinuousIndexToPhysicalPoint(tuple(start - 0.5 + size * np.array(c)))
               for c in np.ndindex(2, 2, 2)]
    corners = np.array(corners)
    return corners.min(0), corners.max(0), np.array(stats.GetCentroid(1))


def _lps_grid(lower: np.ndarray, upper: np.ndarray, spacing: float) -> sitk.Image:
    size = np.maximum(np.ceil((upper - lower) / spacing).astype(int), 1)
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing([spacing] * 3)
    grid.SetOrigin(tuple(lower + spacing / 2))
    grid.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    return grid


def _resample_mask(tumor: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """Mask on the reference grid: linear interpolation of the 0/1 mask, >= 0.5 (less jagged than nearest)."""
    soft = sitk.Resample(sitk.Cast(tumor != 0, sitk.sitkFloat32), reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    return (sitk.GetArrayFromImage(soft) >= 0.5).astype(np.uint8)  # [z, y, x]


def _plane_reference(center: np.ndarray, axis: int, position: float, size: int, spacing: float) -> sitk.Image:
    dims = [size, size, size]
    dims[axis] = 1
    origin = center - spacing * (size - 1) / 2
    origin[axis] = position
    grid = sitk.Image(dims, sitk.sitkUInt8)
    grid.SetSpacing([spacing] * 3)
    grid.SetOrigin(tuple(origin))
    grid.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    return grid


def _to_2d(array: np.ndarray, axis: int) -> np.ndarray:
    """A [z, y, x] array with one slice along ``axis`` -> the 2D patch in display orientation."""
    if axis == 2:  # axial [y, x]: rows anterior->posterior, cols right->left (LPS x grows to the left)
        return array[0]
    if axis == 1:  # coronal [z, x]: superior at the top
        return array[:, 0, :][::-1]
    return array[:, :, 0][::-1]  # sagittal [z, y]


def extract_tumor_slices(ct: sitk.Image, tumor: sitk.Image, size: int = 224, spacing_mm: float = 1.0,
                         per_plane: int = 3, background_hu: float = -1024.0) -> TumorSlices:
    """The ``3 * per_plane`` patches (axial, then coronal, then sagittal; largest area first in each plane)."""
    lower, upper, centroid = tumor_bounds_mm(tumor)
    selection_grid = _lps_grid(lower, upper, spacing_mm)
    mask = _resample_mask(tumor, selection_grid)  # [z, y, x] = LPS axes (2, 1, 0)
    if not mask.any():  # a tumour thinner than the grid: fall back to nearest-neighbour sampling
        mask = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(tumor != 0, sitk.sitkUInt8), selection_grid,
                                                    sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    origin = np.array(selection_grid.GetOrigin())
    images, masks, planes, positions, areas = [], [], [], [], []
    ct_float = sitk.Cast(ct, sitk.sitkFloat32)
    tumor_binary = sitk.Cast(tumor != 0, sitk.sitkFloat32)
    for plane, axis in PLANES:
        array_axis = 2 - axis
        per_slice = mask.sum(axis=tuple(a for a in range(3) if a != array_axis)).astype(float)
        distance = np.abs(origin[axis] + np.arange(len(per_slice)) * spacing_mm - centroid[axis])
        order = np.lexsort((distance, -per_slice))  # largest area first; equal areas: nearest the centroid first
        chosen = [int(i) for i in order[:per_plane] if per_slice[i] > 0] or [int(order[0])]
        while len(chosen) < per_plane:  # a tumour thinner than per_plane slices: repeat its largest slice
            chosen.append(chosen[0])
        for index in chosen:
            position = float(origin[axis] + index * spacing_mm)
            reference = _plane_reference(centroid.copy(), axis, position, size, spacing_mm)
            image = sitk.Resample(ct_float, reference, sitk.Transform(), sitk.sitkLinear, background_hu)
            patch_mask = sitk.Resample(tumor_binary, reference, sitk.Transform(), sitk.sitkLinear, 0.0)
            images.append(_to_2d(sitk.GetArrayFromImage(image), axis))
            masks.append((_to_2d(sitk.GetArrayFromImage(patch_mask), axis) >= 0.5).astype(np.uint8))
            planes.append(plane)
            positions.append(position)
            areas.append(float(per_slice[index] * spacing_mm ** 2))
    return TumorSlices(np.ascontiguousarray(np.stack(images), np.float32), np.ascontiguousarray(np.stack(masks)),
                       tuple(planes), tuple(positions), tuple(areas), tuple(float(c) for c in centroid))
