"""Slice view layers (CT background, PET or attention foreground) and jumping to a candidate."""

from __future__ import annotations

from typing import Optional, Sequence

import slicer

from .coordinates import lps_to_ras

STANDARD_VIEWS = (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal"))


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


def jump_to_ras(scene, ras: Sequence[float]) -> None:
    """Move every slice view so that it passes through ``ras`` (offset jump: the views do not pan)."""
    for slice_node in _nodes(scene, "vtkMRMLSliceNode"):
        slice_node.JumpSliceByOffsetting(float(ras[0]), float(ras[1]), float(ras[2]))


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
            slice_node.JumpSliceByOffsetting(float(ras[0]), float(ras[1]), float(ras[2]))
    place_crosshair(scene, ras)


def crosshair_ras(scene) -> Optional[list]:
    node = scene.GetFirstNodeByClass("vtkMRMLCrosshairNode")
    if node is None or node.GetCrosshairMode() == node.NoCrosshair:
        return None
    return [round(float(v), 3) for v in node.GetCrosshairRAS()]


def zoom_to_ras(scene, ras: Sequence[float], field_of_view_mm: float) -> None:
    """Centre every slice view on ``ras`` (it pans, unlike jump_to_ras) and show ``field_of_view_mm`` across the
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
