"""Planar contours of a voxel mask, slice by slice, in patient LPS millimetres.

Each slice of the mask is contoured with VTK's flying-edges (marching squares) at iso-level 0.55 on the binary
image. Every outer boundary and every hole boundary becomes its own closed loop; a reader recovers the mask by
the even-odd (XOR) rule over the loops of a slice, the convention of DICOM RT readers (dicompyler-core,
Orthanc Stone, rt-utils' fillPoly) and of planning systems for nested contours. Why 0.55 and not 0.5: the loop
then runs 0.45 voxel outside the centres of boundary voxels and 0.55 voxel from the centres of outside voxels,
so both common rasterisation rules give back exactly the voxels we had: "voxel centre inside the polygon"
(matplotlib/dicompyler, planning systems) and "round the vertices to voxel centres, then fill including the
boundary" (rt-utils/OpenCV). At 0.5 the vertices would fall on half-voxels, where rounding is ambiguous.
The volume enclosed is smaller than the voxel volume by about 0.05 voxel times the perimeter.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

ISO_LEVEL = 0.55


def _loops_from_polydata(polydata) -> list[np.ndarray]:
    import vtk
    from vtk.util import numpy_support

    if polydata.GetNumberOfPoints() == 0:
        return []
    points = numpy_support.vtk_to_numpy(polydata.GetPoints().GetData()).astype(np.float64)[:, :2]
    loops = []
    ids = vtk.vtkIdList()
    lines = polydata.GetLines()
    lines.InitTraversal()
    while lines.GetNextCell(ids):
        index = [ids.GetId(i) for i in range(ids.GetNumberOfIds())]
        if len(index) > 1 and index[0] == index[-1]:
            index = index[:-1]
        if len(index) >= 3:
            loops.append(points[index])
    return loops


def drop_collinear(loop: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Remove vertices lying on the straight line between their neighbours (same polygon, fewer points)."""
    prev, nxt = np.roll(loop, 1, axis=0), np.roll(loop, -1, axis=0)
    cross = (loop[:, 0] - prev[:, 0]) * (nxt[:, 1] - loop[:, 1]) - (loop[:, 1] - prev[:, 1]) * (nxt[:, 0] - loop[:, 0])
    keep = np.abs(cross) > tol
    return loop[keep] if keep.sum() >= 3 else loop


def slice_loops(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed loops (n x 2 arrays of continuous voxel indices (i = column, j = row)) around a 2D mask [row, col]."""
    import vtk
    from vtk.util import numpy_support

    padded = np.pad(np.asarray(mask2d, dtype=np.float32), 1)  # so that loops close at the image border
    image = vtk.vtkImageData()
    image.SetDimensions(padded.shape[1], padded.shape[0], 1)
    image.SetOrigin(-1.0, -1.0, 0.0)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(padded.ravel(), deep=True))
    contour = vtk.vtkFlyingEdges2D()
    contour.SetInputData(image)
    contour.SetValue(0, ISO_LEVEL)
    stripper = vtk.vtkStripper()
    stripper.SetInputConnection(contour.GetOutputPort())
    stripper.JoinContiguousSegmentsOn()
    stripper.Update()
    return [drop_collinear(np.round(loop, 4)) for loop in _loops_from_polydata(stripper.GetOutput())]


def index_to_lps(image: sitk.Image, ijk: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (n x 3, i j k) to patient LPS mm through the image's full physical transform."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (np.asarray(ijk, dtype=np.float64) * np.asarray(image.GetSpacing())) @ direction.T


def mask_contours(mask: np.ndarray, image: sitk.Image, offset: tuple[int, int, int] = (0, 0, 0)) -> dict[int, list[np.ndarray]]:
    """{slice index k: [loop as n x 3 LPS mm points]} for every slice the mask touches.

    ``mask`` is [z, y, x], possibly a crop of the image starting at voxel ``offset`` (k, j, i): contouring a
    node's bounding box instead of whole CT slices keeps export fast on 512 x 512 x 300 CTs.
    """
    k0, j0, i0 = offset
    contours: dict[int, list[np.ndarray]] = {}
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        loops = []
        for loop in slice_loops(mask[k]):
            ijk = np.column_stack([loop[:, 0] + i0, loop[:, 1] + j0, np.full(len(loop), float(k + k0))])
            loops.append(index_to_lps(image, ijk))
        contours[int(k + k0)] = loops
    return contours
