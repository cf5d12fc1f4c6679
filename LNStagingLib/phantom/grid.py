"""The voxel grid of a phantom: geometry (any direction matrix), world <-> index, and chunked evaluation.

Anatomy is defined in world (LPS, mm) coordinates; the grid may be rotated or flipped against it, so the
phantom exercises the geometry of every consumer. Shapes are evaluated only inside their bounding box,
in slabs of bounded size, so a 512x512x300 volume never needs a full-size coordinate array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import SimpleITK as sitk

# Named direction matrices (row-major 3x3, ITK convention: columns are the index axes in world space).
_DIRECTIONS = {
    "identity": np.eye(3),
    "ras": np.diag([-1.0, -1.0, 1.0]),  # what a NIfTI written in RAS order looks like to ITK
}


def oblique_direction(yaw_deg: float = 14.0, pitch_deg: float = 6.0) -> np.ndarray:
    """A proper rotation (about z, then x): a gantry-tilted, rotated acquisition."""
    a, b = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def direction_matrix(direction: str | tuple | np.ndarray | None) -> np.ndarray:
    """'identity', 'ras', 'oblique', or 9 numbers / a 3x3 matrix (must be orthonormal)."""
    if direction is None:
        return np.eye(3)
    if isinstance(direction, str):
        if direction == "oblique":
            return oblique_direction()
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be identity, ras, oblique or 9 numbers, not {direction!r}")
        return _DIRECTIONS[direction].copy()
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    if not np.allclose(matrix.T @ matrix, np.eye(3), atol=1e-6):
        raise ValueError("direction must be an orthonormal 3x3 matrix")
    return matrix


@dataclass(frozen=True)
class Grid:
    """size (nx, ny, nz), spacing (mm), origin (mm, LPS) and direction (3x3) as in SimpleITK."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def centred(cls, size, spacing, centre, direction=None) -> "Grid":
        """A grid whose centre voxel sits at world point ``centre``."""
        d = direction_matrix(direction)
        size = tuple(int(n) for n in size)
        spacing = tuple(float(s) for s in spacing)
        half = (np.asarray(size) - 1) / 2.0 * np.asarray(spacing)
        origin = np.asarray(centre, dtype=float) - d @ half
        return cls(size, spacing, tuple(float(v) for v in origin), tuple(float(v) for v in d.ravel()))

    @property
    def matrix(self) -> np.ndarray:
        """index (i, j, k) -> world offset: D @ diag(spacing)."""
        return np.asarray(self.direction).reshape(3, 3) * np.asarray(self.spacing)[None, :]

    @property
    def shape(self) -> tuple[int, int, int]:
        """numpy array shape (z, y, x)."""
        return self.size[2], self.size[1], self.size[0]

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> continuous index (..., 3) in (i, j, k) order."""
        return (np.asarray(points, float) - np.asarray(self.origin)) @ np.linalg.inv(self.matrix).T

    def to_world(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(index, float) @ self.matrix.T + np.asarray(self.origin)

    def index_box(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Array slices (z, y, x) covering the world box [lo, hi]; None when it misses the grid."""
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        idx = self.to_index(corners)
        start = np.maximum(np.floor(idx.min(0)).astype(int), 0)
        stop = np.minimum(np.ceil(idx.max(0)).astype(int) + 1, np.asarray(self.size))
        if np.any(stop <= start):
            return None
        return slice(start[2], stop[2]), slice(start[1], stop[1]), slice(start[0], stop[0])

    def world_coordinates(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World x, y, z (float32, broadcast to the box's array shape) of the voxel centres in ``box``."""
        k = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None, None]
        j = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :, None]
        i = np.arange(box[2].start, box[2].stop, dtype=np.float32)[None, None, :]
        m = self.matrix.astype(np.float32)
        o = np.asarray(self.origin, dtype=np.float32)
        return tuple(o[r] + m[r, 0] * i + m[r, 1] * j + m[r, 2] * k for r in range(3))

    def slabs(self, box: tuple[slice, slice, slice], max_voxels: int = 4_000_000) -> Iterator[tuple[slice, slice, slice]]:
        """Split ``box`` along z into slabs of at most ``max_voxels`` voxels."""
        plane = max(1, (box[1].stop - box[1].start) * (box[2].stop - box[2].start))
        step = max(1, max_voxels // plane)
        for k0 in range(box[0].start, box[0].stop, step):
            yield slice(k0, min(k0 + step, box[0].stop)), box[1], box[2]

    def paint(self, volume: np.ndarray, lo, hi, inside: Callable, value, where: Callable | None = None) -> int:
        """Set ``volume`` to ``value`` where ``inside(x, y, z)`` holds within the world box [lo, hi].

        ``where(box)`` may return an extra boolean mask restricting the painting (e.g. only into fat).
        Returns the number of voxels painted.
        """
        box = self.index_box(np.asarray(lo), np.asarray(hi))
        if box is None:
            return 0
        count = 0
        for slab in self.slabs(box):
            mask = inside(*self.world_coordinates(slab))
            if where is not None:
                mask &= where(slab)
            volume[slab][mask] = value
            count += int(mask.sum())
        return count

    def image(self, array: np.ndarray) -> sitk.Image:
        """A SimpleITK image of ``array`` (z, y, x) on this grid."""
        if array.shape != self.shape:
            raise ValueError(f"array shape {array.shape} does not match grid {self.shape}")
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def downsampled(self, factors: tuple[int, int, int]) -> "Grid":
        """The grid of block means over ``factors`` (fx, fy, fz) voxels (what ``block_mean`` produces)."""
        f = np.asarray(factors, dtype=int)
        size = np.asarray(self.size) // f
        origin = self.to_world((f - 1) / 2.0)
        spacing = np.asarray(self.spacing) * f
        return Grid(tuple(int(v) for v in size), tuple(float(v) for v in spacing),
                    tuple(float(v) for v in origin), self.direction)
