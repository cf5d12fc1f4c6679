"""Register what Slicer's application would, for a scene created outside Slicer (slicer-core, web app, tests).

Inside Slicer the application has already done all of this; ``prepare_scene`` then only returns what exists.
Modelled on what trame-slicer's SlicerApp does (colour logic + default colour nodes, module logics attached to
an application logic), plus the segmentation converter rules that Slicer's Segmentations module registers.
"""

from __future__ import annotations

from dataclasses import dataclass

import slicer

CONVERTER_RULES = (
    "vtkBinaryLabelmapToClosedSurfaceConversionRule",
    "vtkClosedSurfaceToBinaryLabelmapConversionRule",
    "vtkClosedSurfaceToFractionalLabelmapConversionRule",
    "vtkFractionalLabelmapToClosedSurfaceConversionRule",
)


@dataclass
class SceneLogics:
    """The logics a scene needs for our adapter; keep a reference so VTK does not free them."""

    scene: object
    app_logic: object
    color_logic: object
    segmentations_logic: object
    volumes_logic: object


def register_converter_rules() -> int:
    """Register the segmentation representation converters once per process; return how many are registered."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    present = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for name in CONVERTER_RULES:
        if name not in present and hasattr(slicer, name):
            factory.RegisterConverterRule(getattr(slicer, name)())
    return len(factory.GetConverterRules())


def prepare_scene(scene=None) -> SceneLogics:
    """Return a scene with colour nodes, converter rules, segmentation and volume logics attached.

    ``scene=None`` creates a new ``vtkMRMLScene``. Idempotent for the colour nodes.
    """
    scene = scene if scene is not None else slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    if scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is None:
        color_logic.SetMRMLScene(scene)
        color_logic.AddDefaultColorNodes()
    logics = []
    for logic in (slicer.vtkSlicerSegmentationsModuleLogic(), slicer.vtkSlicerVolumesLogic()):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        logics.append(logic)
    app_logic.SetModuleLogic("Segmentations", logics[0])
    app_logic.SetModuleLogic("Volumes", logics[1])
    register_converter_rules()
    return SceneLogics(scene, app_logic, color_logic, logics[0], logics[1])
