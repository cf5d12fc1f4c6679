"""LPS (library, ITK, DICOM) <-> RAS (MRML): the one conversion boundary of the project.

A SimpleITK image maps index (i, j, k) to LPS by ``origin + direction @ (spacing * ijk)``. MRML maps IJK to RAS by
a 4x4 IJKToRAS matrix. The two differ by the flip ``diag(-1, -1, 1)`` on the world side only; voxel order is
unchanged, so a numpy array [k, j, i] from SimpleITK is the same array as a volume node's image data.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(point: Sequence[float]) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in point)
    return (-x, -y, z)


ras_to_lps = lps_to_ras  # the flip is its own inverse


def ijk_to_ras_matrix(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJKToRAS matrix of a 3D SimpleITK image."""
    if image.GetDimension() != 3:
        raise ValueError("only 3D images have an IJKToRAS matrix")
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin(), dtype=float)
    return matrix


def geometry_from_ijk_to_ras(matrix: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, direction) in LPS, as SimpleITK wants them, from a 4x4 IJKToRAS matrix."""
    matrix = np.asarray(matrix, dtype=float)
    lps = LPS_TO_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / spacing
    origin = LPS_TO_RAS @ matrix[:3, 3]
    return tuple(origin), tuple(spacing), tuple(direction.ravel())


def vtk_matrix(array: np.ndarray):
    """A vtkMatrix4x4 from a 4x4 numpy array."""
    import vtk

    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r][c]))
    return m


def numpy_matrix(vtk_matrix4x4) -> np.ndarray:
    return np.array([[vtk_matrix4x4.GetElement(r, c) for c in range(4)] for r in range(4)])
