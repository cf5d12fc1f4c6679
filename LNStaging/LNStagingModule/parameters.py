"""The module's parameter node (Slicer 5.x parameterNodeWrapper); mapped to the GUI with connectGui."""

from typing import Annotated

import slicer
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper


@parameterNodeWrapper
class LNStagingParameterNode:
    ct: slicer.vtkMRMLScalarVolumeNode
    pet: slicer.vtkMRMLScalarVolumeNode
    organs: slicer.vtkMRMLSegmentationNode
    threshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    fpPerPatient: Annotated[float, WithinRange(0.0, 10.0)] = 2.0
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    showRejected: bool = False
