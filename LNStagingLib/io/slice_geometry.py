"""Where each DICOM slice (or frame) really is, and a regular grid that keeps every slice there.

A volume written with one origin, one direction and one slice spacing puts slice k at origin + k * spacing * normal.
Three real acquisitions break that and would silently move anatomy: a gantry tilt (the slices are tilted planes,
but the table steps along the patient, so the stack is not along the plane normal), slice gaps that drift within the
per-gap tolerance (the error accumulates: 272 slices of 2.2 mm after 273 of 2.025 mm end 23.8 mm off), and
multi-frame objects whose frames ITK puts on a 1 mm fallback grid. Here every slice's recorded position is compared
with the grid we would write; beyond a tenth of a millimetre the slices are resampled (linear, along and across the
planes) onto a regular grid along the table whose every recorded slice stays where it was acquired -- what dcm2niix
(gantry-tilt correction) and 3D Slicer's acquisition-geometry regularisation do. A missing slice (a gap more than 10 %
above the median) or two slices at one position are refused: resampling cannot bring missing data back.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import map_coordinates

from ..errors import DicomError

log = logging.getLogger(__name__)

#: Relative deviation of a slice gap from the median that we accept; beyond it a slice is missing.
SLICE_GAP_TOLERANCE = 0.1
#: A recorded slice farther than this from where the written grid puts it is resampled (0.1 mm: a tenth of the
#: smallest CT pixel; 3D Slicer warns about spacing differences above 0.01 mm, its spacingEpsilon).
DISPLACEMENT_TOLERANCE_MM = 0.1


@dataclass(frozen=True)
class SliceStack:
    """Slices sorted along their normal: positions (K, 3) of their first pixel in LPS mm, the row and column
    direction cosines (ImageOrientationPatient) and the pixel spacing along them (mm)."""

    positions: np.ndarray
    row: np.ndarray  # direction of increasing column index (first triplet of ImageOrientationPatient)
    column: np.ndarray  # direction of increasing row index (second triplet)
    spacing: tuple[float, float]  # (along row, along column) = (PixelSpacing[1], PixelSpacing[0])

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row, self.column)

    @property
    def heights(self) -> np.ndarray:
        return self.positions @ self.normal


def sorted_stack(orientation, positions, pixel_spacing, folder) -> tuple[np.ndarray, SliceStack]:
    """Order (indices into the given slices) along the normal and the sorted SliceStack; refuses a missing slice or
    two slices at one position."""
    try:
        orientation = np.array([float(v) for v in orientation], dtype=float)
        positions = np.array([[float(v) for v in p] for p in positions], dtype=float)
        pixel_spacing = [float(v) for v in pixel_spacing]
    except (TypeError, ValueError):
        orientation = None
    if orientation is None or orientation.shape != (6,) or positions.ndim != 2 or positions.shape[1] != 3 \
            or len(pixel_spacing) != 2 or not np.all(np.isfinite(positions)) or not np.all(np.isfinite(orientation)):
        raise DicomError(f"DICOM series in '{folder}' lacks a valid ImagePositionPatient/ImageOrientationPatient/"
                         f"PixelSpacing: it is not a 3D image series; export the volume again from the scanner or PACS.")
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    order = np.argsort(positions @ normal, kind="stable")
    stack = SliceStack(positions[order], row, column, (pixel_spacing[1], pixel_spacing[0]))
    check_gaps(stack.heights, folder)
    return order, stack


#: Slices whose direction cosines differ by more than this are not one stack (Slicer: orientationEpsilon 1e-6; DS
#: values rounded to 6-8 digits need more room).
ORIENTATION_TOLERANCE = 1e-4


def check_orientations(orientations: list, folder) -> None:
    """Every slice must have the first slice's ImageOrientationPatient: a localizer or another series mixed in is
    refused (its slice cannot be placed in the stack)."""
    try:
        values = np.array([[float(v) for v in o] for o in orientations], dtype=float)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim != 2 or values.shape[1] != 6:
        raise DicomError(f"DICOM series in '{folder}' lacks a valid ImageOrientationPatient on some slices: export the "
                         f"volume again from the scanner or PACS.")
    worst = np.max(np.abs(values - values[0]), axis=1)
    if np.any(worst > ORIENTATION_TOLERANCE):
        k = int(np.argmax(worst))
        raise DicomError(f"DICOM series in '{folder}' mixes slice orientations (slice {k} differs from the first: a "
                         f"localizer or another series in the same folder): give one volume's slices only.")


def check_gaps(heights: np.ndarray, folder) -> None:
    """Two slices at one position, or a gap over 10 % above the median (a missing slice), are refused."""
    gaps = np.diff(heights)
    if np.any(np.abs(gaps) < 1e-3):
        raise DicomError(f"DICOM series in '{folder}' has two slices at the same position (several acquisitions or "
                         f"time frames mixed in one series): give one acquisition only.")
    median = float(np.median(gaps))
    worst = float(np.max(np.abs(gaps - median)))
    if worst > SLICE_GAP_TOLERANCE * median:
        k = int(np.argmax(np.abs(gaps - median)))
        raise DicomError(f"DICOM series in '{folder}' has an uneven slice gap after slice {k} ({gaps[k]:.2f} mm vs "
                         f"{median:.2f} mm): a slice file is probably missing; copy the whole series again.")


def displacements(image: sitk.Image, stack: SliceStack) -> np.ndarray:
    """Distance (mm) of each recorded slice position from where ``image`` puts slice k's first pixel."""
    placed = np.array([image.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(len(stack.positions))])
    return np.linalg.norm(placed - stack.positions, axis=1)


def regular_image(array: np.ndarray, stack: SliceStack) -> sitk.Image:
    """The slices [k, row, column] as an image with the stack's first position, its directions and the mean gap."""
    image = sitk.GetImageFromArray(array)
    count = len(stack.positions)
    step = float(stack.heights[-1] - stack.heights[0]) / (count - 1)
    image.SetOrigin(stack.positions[0].tolist())
    image.SetSpacing((stack.spacing[0], stack.spacing[1], step))
    image.SetDirection(np.column_stack([stack.row, stack.column, stack.normal]).ravel().tolist())
    return image


def tilt_degrees(stack: SliceStack) -> float:
    """Angle between the slice normal and the direction the slices step along (the gantry tilt)."""
    along = stack.positions[-1] - stack.positions[0]
    cosine = float(np.clip(along @ stack.normal / np.linalg.norm(along), -1.0, 1.0))
    return math.degrees(math.acos(cosine))


def _regular_axes(stack: SliceStack) -> np.ndarray:
    """Orthonormal output axes (columns): the row direction made perpendicular to the table step, the third axis
    along the step (the table), the second completing a right-handed frame."""
    along = stack.positions[-1] - stack.positions[0]
    third = along / np.linalg.norm(along)
    first = stack.row - (stack.row @ third) * third
    first /= np.linalg.norm(first)
    return np.column_stack([first, np.cross(third, first), third])


def resample_regular(array: np.ndarray, stack: SliceStack, fill: float) -> sitk.Image:
    """Resample slices [k, row, column] that lie at arbitrary (parallel-plane) positions onto a regular orthogonal
    grid along the table: a point's slice index is interpolated from its height along the normal between the two
    recorded slices around it, its in-plane indices from that interpolated slice origin. Outside the slices: ``fill``."""
    count, rows, columns = array.shape
    axes = _regular_axes(stack)
    spacing = np.array([stack.spacing[0], stack.spacing[1],
                        float(np.linalg.norm(stack.positions[-1] - stack.positions[0])) / (count - 1)])
    corners = np.array([p + a * (columns - 1) * stack.spacing[0] * stack.row + b * (rows - 1) * stack.spacing[1]
                        * stack.column for p in stack.positions for a in (0, 1) for b in (0, 1)])
    local = corners @ axes  # coordinates along the output axes
    low, high = local.min(axis=0), local.max(axis=0)
    size = np.ceil((high - low) / spacing - 1e-6).astype(int) + 1
    origin = axes @ low
    heights, normal = stack.heights, stack.normal
    slice_index = np.arange(count, dtype=float)
    ii, jj = np.meshgrid(np.arange(size[0]) * spacing[0], np.arange(size[1]) * spacing[1])  # [j, i]
    plane = origin + ii[..., None] * axes[:, 0] + jj[..., None] * axes[:, 1]
    source = np.ascontiguousarray(array, dtype=np.float32)
    out = np.empty((size[2], size[1], size[0]), dtype=np.float32)
    for m in range(size[2]):
        points = plane + m * spacing[2] * axes[:, 2]
        height = points @ normal
        k = np.interp(height, heights, slice_index, left=np.nan, right=np.nan)
        k = np.where(np.isnan(k) & (np.abs(height - heights[0]) < 1e-4), 0.0, k)
        k = np.where(np.isnan(k) & (np.abs(height - heights[-1]) < 1e-4), count - 1.0, k)
        below = np.clip(np.floor(np.nan_to_num(k, nan=0.0)).astype(int), 0, count - 1)
        above = np.minimum(below + 1, count - 1)
        fraction = (np.nan_to_num(k, nan=0.0) - below)[..., None]
        corner = (1 - fraction) * stack.positions[below] + fraction * stack.positions[above]
        offset = points - corner
        column_index = offset @ stack.row / stack.spacing[0]
        row_index = offset @ stack.column / stack.spacing[1]
        k = np.where(np.isnan(k), -10.0, k)  # outside the stack: map_coordinates gives ``fill``
        out[m] = map_coordinates(source, [k, row_index, column_index], order=1, mode="constant", cval=fill)
    image = sitk.GetImageFromArray(out)
    image.SetOrigin(origin.tolist())
    image.SetSpacing(spacing.tolist())
    image.SetDirection(axes.ravel().tolist())
    return image


def place_slices(image: sitk.Image | None, array_of, stack: SliceStack, fill: float, what: str) -> tuple[sitk.Image, str | None]:
    """The volume with every slice at its recorded position, and a one-line note when it had to be resampled.

    ``image`` is what the reader built (None: build the regular grid from the positions); ``array_of()`` returns
    the pixels [k, row, column] in stack order, only called when needed."""
    if image is None:
        image = regular_image(array_of(), stack)
    moved = displacements(image, stack)
    worst = float(moved.max())
    if worst <= DISPLACEMENT_TOLERANCE_MM:
        return image, None
    tilt = tilt_degrees(stack)
    cause = f"gantry tilt {tilt:.1f} degrees" if tilt > 0.05 else "irregular slice spacing"
    resampled = resample_regular(array_of(), stack, fill)
    note = (f"{what} resampled onto a regular grid along the table ({cause}: a regular stack would put slice "
            f"{int(np.argmax(moved))} {worst:.1f} mm from its recorded position); every slice kept at its recorded "
            f"position")
    log.warning("%s", note)
    return resampled, note
