"""Slice view layers (CT background, PET or attention foreground) and jumping to a candidate."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import slicer

from .coordinates import lps_to_ras, numpy_matrix

STANDARD_VIEWS = (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal"))
# A jump keeps a view's pan while the point lies this far (a fraction of the view's width or height) inside its
# edges, so the node and some of what surrounds it are seen; nearer an edge or outside, the view is centred on it.
JUMP_EDGE_MARGIN = 0.1


def _nodes(scene, class_name: str) -> list:
    return [scene.GetNthNodeByClass(i, class_name) for i in range(scene.GetNumberOfNodesByClass(class_name))]


def ensure_slice_views(scene) -> list:
    """Slice and slice-composite nodes for Red/Yellow/Green. Slicer's layout creates them; outside Slicer we do."""
    slice_nodes = _nodes(scene, "vtkMRMLSliceNode")
    if slice_nodes:
        return slice_nodes
    default = scene.GetDefaultNodeByClass("vtkMRMLSliceNode")
    if default is None or default.GetNumberOfSliceOrientationPresets() == 0:
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    for layout_name, orientation in STANDARD_VIEWS:
        slice_node = scene.CreateNodeByClass("vtkMRMLSliceNode")
        slice_node.SetName(layout_name)
        slice_node.SetLayoutName(layout_name)
        slice_node.SetSingletonTag(layout_name)
        scene.AddNode(slice_node)
        slice_node.SetOrientation(orientation)
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(layout_name)
        composite.SetSingletonTag(layout_name)
        scene.AddNode(composite)
    return _nodes(scene, "vtkMRMLSliceNode")


def composite_nodes(scene) -> list:
    return _nodes(scene, "vtkMRMLSliceCompositeNode")


def set_layers(scene, background=None, foreground=None, foreground_opacity: Optional[float] = None) -> None:
    """Like slicer.util.setSliceViewerLayers, but on the given scene. ``None`` keeps the current layer."""
    for composite in composite_nodes(scene):
        if background is not None:
            composite.SetBackgroundVolumeID(background.GetID())
        if foreground is not None:
            composite.SetForegroundVolumeID(foreground.GetID())
        if foreground_opacity is not None:
            composite.SetForegroundOpacity(float(foreground_opacity))


def set_foreground_opacity(scene, opacity: float) -> None:
    set_layers(scene, foreground_opacity=opacity)


def shows_point(slice_node, ras: Sequence[float], margin: float = 0.0) -> bool:
    """True when ``ras`` projects into the slice view, at least ``margin`` (a fraction of its size) from each edge."""
    x, y = (np.linalg.inv(numpy_matrix(slice_node.GetXYToRAS())) @ [*map(float, ras), 1.0])[:2]
    width, height = slice_node.GetDimensions()[:2]
    return margin * width <= x <= (1 - margin) * width and margin * height <= y <= (1 - margin) * height


def _jump_showing(slice_node, ras: Sequence[float]) -> None:
    """The view passes through ``ras`` and shows it: an offset jump (the view does not pan) when that leaves the
    point well inside the view, else centred on it. An offset jump alone left a node off-screen when the view was
    zoomed or panned, or fitted at another size: the reader did not see it, and a brush stroke aimed at it missed."""
    x, y, z = (float(v) for v in ras)
    slice_node.JumpSliceByOffsetting(x, y, z)
    if not shows_point(slice_node, ras, JUMP_EDGE_MARGIN):
        slice_node.JumpSliceByCentering(x, y, z)


def jump_to_ras(scene, ras: Sequence[float]) -> None:
    """Move every slice view so that it passes through ``ras`` and shows it (``_jump_showing``)."""
    for slice_node in _nodes(scene, "vtkMRMLSliceNode"):
        _jump_showing(slice_node, ras)


def crosshair_node(scene):
    """The scene's crosshair (Slicer's application logic makes one; outside Slicer we add it once)."""
    node = scene.GetFirstNodeByClass("vtkMRMLCrosshairNode")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLCrosshairNode", "Crosshair")
        node.SetSingletonTag("default")
    return node


def place_crosshair(scene, ras: Sequence[float]) -> None:
    """Draw the crosshair at ``ras`` in every slice view (lines with a gap at the point)."""
    node = crosshair_node(scene)
    node.SetCrosshairMode(node.ShowIntersection)
    node.SetCrosshairRAS(float(ras[0]), float(ras[1]), float(ras[2]))


def link_views_at(scene, ras: Sequence[float], source=None) -> None:
    """The linked crosshair: every slice view other than ``source`` (the view clicked) moves to pass through
    ``ras`` and all of them draw the crosshair there; the clicked view keeps its slice."""
    for slice_node in _nodes(scene, "vtkMRMLSliceNode"):
        if slice_node is not source:
            _jump_showing(slice_node, ras)
    place_crosshair(scene, ras)


def crosshair_ras(scene) -> Optional[list]:
    node = scene.GetFirstNodeByClass("vtkMRMLCrosshairNode")
    if node is None or node.GetCrosshairMode() == node.NoCrosshair:
        return None
    return [round(float(v), 3) for v in node.GetCrosshairRAS()]


def zoom_to_ras(scene, ras: Sequence[float], field_of_view_mm: float) -> None:
    """Centre every slice view on ``ras`` (it always pans, unlike jump_to_ras) and show ``field_of_view_mm`` across the
    view's shorter side, keeping each view's aspect ratio and slice thickness."""
    for slice_node in _nodes(scene, "vtkMRMLSliceNode"):
        slice_node.JumpSliceByCentering(float(ras[0]), float(ras[1]), float(ras[2]))
        width, height, depth = slice_node.GetFieldOfView()
        ratio = width / height if height > 0 else 1.0
        short = float(field_of_view_mm)
        if ratio >= 1:
            slice_node.SetFieldOfView(short * ratio, short, depth)
        else:
            slice_node.SetFieldOfView(short, short / ratio, depth)


def jump_to_candidate(scene, candidate) -> tuple[float, float, float]:
    """Jump all slice views to a candidate's centroid; return the RAS point."""
    ras = lps_to_ras(candidate.centroid_lps)
    jump_to_ras(scene, ras)
    return ras
