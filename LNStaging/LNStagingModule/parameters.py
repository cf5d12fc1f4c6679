"""The module's parameter node (Slicer 5.x parameterNodeWrapper); mapped to the GUI with connectGui."""

from typing import Annotated

import slicer
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper


@parameterNodeWrapper
class LNStagingParameterNode:
    ct: slicer.vtkMRMLScalarVolumeNode  # None: a PET-only run
    pet: slicer.vtkMRMLScalarVolumeNode
    organs: slicer.vtkMRMLSegmentationNode
    # a probability (0 to 1), or an SUVpeak when the run ranks by SUV (no classifier ran: logic.SUV_THRESHOLD_MAX)
    threshold: Annotated[float, WithinRange(0.0, 100.0)] = 0.5
    fpPerPatient: Annotated[float, WithinRange(0.0, 10.0)] = 2.0
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    showRejected: bool = False
