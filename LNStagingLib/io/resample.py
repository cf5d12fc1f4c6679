"""Grids in world (LPS) coordinates: compare them, measure their overlap, resample onto a reference or onto an
isotropic working grid that keeps the direction matrix (so no silent reorientation happens).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError

#: How far apart two grids may place the same voxel and still be the same grid, as a fraction of the smaller voxel
#: spacing. DICOM-derived geometry carries round-off (float32 NIfTI headers: ~1e-5 mm; SEG/RTSTRUCT positions and
#: orientations written with 6-8 digits: up to ~1e-3 mm, growing across the image through the direction cosines);
#: one hundredth of a voxel accepts that and still refuses any real shift (0.01 voxel is at most 0.05 mm on PET).
GRID_TOLERANCE = 0.01

INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
    "label_gaussian": sitk.sitkLabelGaussian,
}


def grid_offset_voxels(a: sitk.Image, b: sitk.Image) -> float:
    """Largest distance (in voxels of the smallest spacing of either) between the world positions the two grids give
    the same voxel index; infinite when the sizes differ.

    Index -> world is affine, so the largest distance over the whole grid is at one of its corner voxels: checking
    those covers origin, spacing and direction differences at once, in the unit that matters (voxels).
    """
    if a.GetDimension() != b.GetDimension() or a.GetSize() != b.GetSize():
        return math.inf
    last = np.array(a.GetSize(), dtype=float) - 1.0
    corners = np.array(list(itertools.product((0.0, 1.0), repeat=a.GetDimension()))) * last
    world = []
    for image in (a, b):
        n = image.GetDimension()
        direction = np.array(image.GetDirection(), dtype=float).reshape(n, n)
        world.append(np.array(image.GetOrigin()) + (corners * np.array(image.GetSpacing())) @ direction.T)
    distance = float(np.linalg.norm(world[0] - world[1], axis=1).max())
    return distance / min(a.GetSpacing() + b.GetSpacing())


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = GRID_TOLERANCE) -> bool:
    """Same size, and every voxel within ``tolerance`` voxels of where the other grid puts it (see GRID_TOLERANCE).

    The one grid comparison of the library: every "is this on the CT/PET grid?" question goes through it."""
    return grid_offset_voxels(a, b) <= tolerance


def snap_to_grid(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``image``, already on the reference grid (same_grid), carrying the reference's exact origin,
    spacing and direction (voxels untouched).

    NIfTI headers (float32) and DICOM round-off leave grids that agree to ~1e-5 mm; ITK's filters compare two inputs'
    geometry to ~1e-6 of a voxel and refuse such a pair ("Inputs do not occupy the same physical space"). Every place
    that accepts two grids as the same hands on the snapped image, so no later filter sees the difference.
    """
    if (image.GetOrigin() == reference.GetOrigin() and image.GetSpacing() == reference.GetSpacing()
            and image.GetDirection() == reference.GetDirection()):
        return image
    snapped = sitk.Image(image)
    snapped.CopyInformation(reference)
    return snapped


def describe_grid(image: sitk.Image) -> str:
    spacing = "x".join(f"{s:.4g}" for s in image.GetSpacing())
    origin = ", ".join(f"{o:.1f}" for o in image.GetOrigin())
    return f"size {image.GetSize()}, spacing {spacing} mm, origin ({origin})"


def require_same_grid(image: sitk.Image, reference: sitk.Image, what: str = "label map",
                      reference_what: str = "CT", remedy: str | None = None) -> sitk.Image:
    """``image`` snapped onto the reference grid (see snap_to_grid); GeometryError unless it is on that grid to
    within GRID_TOLERANCE (see same_grid; for inputs whose voxels must line up). ``remedy`` says what the user can do
    (default: export or resample the image onto the reference grid)."""
    if not same_grid(image, reference):
        remedy = remedy or (f"export it on the {reference_what} grid, or resample it with nearest-neighbour "
                            "interpolation first")
        raise GeometryError(
            f"the {what} is not on the {reference_what} grid ({describe_grid(image)} vs {describe_grid(reference)}): "
            f"{remedy}."
        )
    return snap_to_grid(image, reference)


def world_corners(image: sitk.Image) -> np.ndarray:
    """The 8 outer corners (voxel edges, not centres) of the image in world coordinates, shape (8, 3)."""
    size = np.array(image.GetSize(), dtype=float)
    corners = []
    for pick in itertools.product((0, 1), repeat=3):
        index = np.where(np.array(pick) == 1, size - 0.5, -0.5)
        corners.append(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))
    return np.array(corners)


def world_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned (LPS) bounding box of the image's extent: (min xyz, max xyz) in mm."""
    corners = world_corners(image)
    return corners.min(axis=0), corners.max(axis=0)


def overlap_fraction(moving: sitk.Image, reference: sitk.Image) -> float:
    """Fraction of the reference's world bounding box that the moving image's bounding box covers (0..1)."""
    lo_a, hi_a = world_bounds(moving)
    lo_b, hi_b = world_bounds(reference)
    inter = np.clip(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0.0, None)
    volume = float(np.prod(hi_b - lo_b))
    return float(np.prod(inter)) / volume if volume > 0 else 0.0


def require_overlap(moving: sitk.Image, reference: sitk.Image, what: str = "PET", reference_what: str = "CT") -> float:
    """GeometryError if the two images share no space at all; returns the overlap fraction otherwise."""
    fraction = overlap_fraction(moving, reference)
    if fraction <= 0.0:
        lo_a, hi_a = world_bounds(moving)
        lo_b, hi_b = world_bounds(reference)
        raise GeometryError(
            f"{what} and {reference_what} do not overlap in space ({what} z {lo_a[2]:.0f}..{hi_a[2]:.0f} mm, "
            f"{reference_what} z {lo_b[2]:.0f}..{hi_b[2]:.0f} mm): check that both come from the same patient and "
            f"study, or register them first."
        )
    return fraction


def resample_to_reference(image: sitk.Image, reference: sitk.Image, interpolation: str = "linear",
                          default_value: float = 0.0, transform: sitk.Transform | None = None,
                          pixel_type: int | None = None) -> sitk.Image:
    """``image`` sampled on the reference grid ('linear' for intensities, 'nearest' for label maps).

    ``transform`` maps reference (fixed) points to image (moving) points, as in ITK registration output.
    """
    if interpolation not in INTERPOLATORS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATORS)}")
    if transform is None and same_grid(image, reference):
        return snap_to_grid(image if pixel_type is None else sitk.Cast(image, pixel_type), reference)
    return sitk.Resample(
        image, reference, transform or sitk.Transform(), INTERPOLATORS[interpolation], float(default_value),
        image.GetPixelID() if pixel_type is None else pixel_type,
    )


def isotropic_grid(image: sitk.Image, spacing_mm: float = 1.0) -> sitk.Image:
    """An empty reference image covering the same world extent with ``spacing_mm`` voxels and the same direction."""
    return grid_with_spacing(image, (spacing_mm,) * 3)


def grid_with_spacing(image: sitk.Image, spacing_xyz) -> sitk.Image:
    """An empty reference image covering the same world extent with voxels of ``spacing_xyz`` mm, same direction.

    The first voxel's outer corner stays where the input's is, so the extent is preserved (up to one voxel).
    """
    old_spacing = np.array(image.GetSpacing(), dtype=float)
    old_size = np.array(image.GetSize(), dtype=float)
    new_spacing = np.array(spacing_xyz, dtype=float).reshape(3)
    new_size = [max(1, int(math.ceil(n - 1e-6))) for n in old_size * old_spacing / new_spacing]
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = np.array(image.GetOrigin()) - direction @ (old_spacing / 2.0)
    origin = corner + direction @ (new_spacing / 2.0)
    grid = sitk.Image(new_size, sitk.sitkUInt8)
    grid.SetSpacing(new_spacing.tolist())
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin(origin.tolist())
    return grid


def resample_isotropic(image: sitk.Image, spacing_mm: float = 1.0, interpolation: str = "linear",
                       default_value: float = 0.0) -> sitk.Image:
    """``image`` on the isotropic working grid of itself (see isotropic_grid)."""
    return resample_to_reference(image, isotropic_grid(image, spacing_mm), interpolation, default_value)
