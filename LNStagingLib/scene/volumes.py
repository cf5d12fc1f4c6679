"""SimpleITK images (LPS) <-> MRML volume nodes (RAS), and how CT, PET and the attention map are displayed."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from ..errors import GeometryError
from ..report import PET_ONLY_SUV_MAX
from .coordinates import geometry_from_ijk_to_ras, ijk_to_ras_matrix, numpy_matrix, vtk_matrix

PET_COLOR_NODE_ID = "vtkMRMLPETProceduralColorNodePET-Heat"
ATTENTION_COLOR_NODE_ID = "vtkMRMLPETProceduralColorNodePET-Heat"
CT_WINDOW_LEVEL = (400.0, 40.0)  # soft-tissue / mediastinal window in HU
PET_BACKGROUND_ATTRIBUTE = "LNStaging.PETBackground"


def image_data_from_array(array: np.ndarray) -> vtk.vtkImageData:
    """A vtkImageData (origin 0, spacing 1) holding a copy of a [z, y, x] numpy array."""
    array = np.ascontiguousarray(array)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True)
    image_data.GetPointData().SetScalars(scalars)
    return image_data


def add_volume(scene, image: sitk.Image, name: str, labelmap: bool = False):
    """Add a 3D SimpleITK image as a scalar (or labelmap) volume node with its geometry converted to RAS."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{name}: a 3D single-component image is needed")
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, name)
    node.SetAndObserveImageData(image_data_from_array(sitk.GetArrayViewFromImage(image)))
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras_matrix(image)))
    node.CreateDefaultDisplayNodes()
    return node


def update_volume(node, image: sitk.Image) -> None:
    """Replace a node's voxels and geometry by those of ``image`` (keeps display settings)."""
    node.SetAndObserveImageData(image_data_from_array(sitk.GetArrayViewFromImage(image)))
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras_matrix(image)))


def array_from_volume(node) -> np.ndarray:
    """A copy of a volume node's voxels as a [z, y, x] numpy array."""
    image_data = node.GetImageData()
    nx, ny, nz = image_data.GetDimensions()
    return numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(nz, ny, nx).copy()


def image_from_volume(node) -> sitk.Image:
    """The SimpleITK image (LPS geometry) of a volume node in its own frame: parent transforms are not applied
    (``image_in_frame`` places it in another node's frame)."""
    origin, spacing, direction = geometry_from_ijk_to_ras(numpy_matrix(_ijk_to_ras(node)))
    image = sitk.GetImageFromArray(array_from_volume(node))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def matrix_to_frame(node, reference) -> np.ndarray:
    """The 4x4 RAS matrix taking ``node``'s local coordinates into ``reference``'s local coordinates through both
    nodes' parent transforms (identity when both are untransformed or share the transform). A non-linear transform
    between them, or one that shears or scales, is refused: an image grid cannot carry it without resampling."""
    from slicer import vtkMRMLTransformNode

    matrix = vtk.vtkMatrix4x4()
    if not vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(node.GetParentTransformNode(),
                                                               reference.GetParentTransformNode(), matrix):
        raise GeometryError(f"{node.GetName()} is under a non-linear (warping) transform relative to "
                               f"{reference.GetName()}: harden the transform (Data module: right-click the volume, "
                               "Harden transform), then run again.")
    array = numpy_matrix(matrix)
    rotation = array[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-5) or np.linalg.det(rotation) < 0:
        raise GeometryError(f"The transform between {node.GetName()} and {reference.GetName()} scales, shears or "
                               "mirrors: harden it (Data module: right-click the volume, Harden transform), then run "
                               "again.")
    return array


def image_in_frame(node, reference, image: Optional[sitk.Image] = None) -> sitk.Image:
    """``node``'s voxels (or ``image``, which must be on ``node``'s own grid) with the geometry they have in
    ``reference``'s frame: what a registered PET is in the CT's coordinates, without resampling."""
    image = image_from_volume(node) if image is None else sitk.Image(image)
    ijk_to_ras = numpy_matrix(_ijk_to_ras(node))
    origin, spacing, direction = geometry_from_ijk_to_ras(matrix_to_frame(node, reference) @ ijk_to_ras)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def _ijk_to_ras(node) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return matrix


@contextlib.contextmanager
def temporary_nodes(scene) -> Iterator[None]:
    """Remove on exit every node added to ``scene`` inside the block: a temporary label map and what Slicer adds
    with it (``ExportSegmentsToLabelmapNode`` gives it a display node and a new colour table, which
    ``RemoveNode`` of the label map leaves behind: one "..._ColorTable" per Save, Export and Report)."""
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    try:
        yield
    finally:
        added = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        for node in [n for n in added if n is not None and n.GetID() not in before]:
            scene.RemoveNode(node)


def load_volume_file(scene, path: Path | str, name: Optional[str] = None, labelmap: bool = False):
    """Read an image file (NIfTI, NRRD, ...) with SimpleITK and add it; DICOM folders go through LNStagingLib.io."""
    path = Path(path)
    image = sitk.ReadImage(str(path))
    return add_volume(scene, image, name or path.name.split(".")[0], labelmap=labelmap)


def add_pet_background(scene, image: sitk.Image):
    """The PET as the background of a PET-only review (no CT): inverted grey, SUV 0 (white) to
    PET_ONLY_SUV_MAX (black), as PET is read; ``show_ct`` keeps it so (a CT window means nothing on SUV)."""
    node = mark_pet_background(add_volume(scene, image, "PET (no CT)"))
    show_ct(node)
    return node


def mark_pet_background(node):
    """Make a PET volume already in the scene (Slicer: the user's PET, or its SUV copy) the background of a PET-only
    review: ``show_ct`` then shows it as add_pet_background does. Returns the node."""
    node.SetAttribute(PET_BACKGROUND_ATTRIBUTE, "1")
    return node


def is_pet_background(node) -> bool:
    return node is not None and node.GetAttribute(PET_BACKGROUND_ATTRIBUTE) == "1"


def show_ct(node, window_level: tuple[float, float] = CT_WINDOW_LEVEL) -> None:
    """The background in its CT window; a PET-only review's PET background (add_pet_background) in its SUV range."""
    display = node.GetDisplayNode()
    if is_pet_background(node):
        display.SetAutoWindowLevel(False)
        display.SetWindowLevelMinMax(0.0, PET_ONLY_SUV_MAX)
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeInvertedGrey")
        return
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(*window_level)
    display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")


def show_pet(node, suv_max: float = 10.0, color_node_id: str = PET_COLOR_NODE_ID) -> None:
    """Display a PET in SUV from 0 (transparent-black end of the colour map) to ``suv_max``."""
    display = node.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, float(suv_max))
    display.SetAndObserveColorNodeID(color_node_id)
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(0.05 * float(suv_max))  # background uptake stays see-through over CT


def show_attention(node, color_node_id: str = ATTENTION_COLOR_NODE_ID) -> None:
    """Attention is in [0, 1]: full range of the heat map, zero transparent."""
    display = node.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetAndObserveColorNodeID(color_node_id)
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(1e-3)
