"""Stage-1 candidates: LN instances from the probability map (threshold, connected components, minimum size).

SimpleITK does the work: BinaryThreshold -> ConnectedComponent (face connectivity) -> RelabelComponent, which drops
components smaller than the minimum volume and numbers the rest 1..N by decreasing size. The instance label map is
uint16 on the probability map's grid (geometry kept); its values are the candidate ids of the Results.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_VOLUME_MM3 = 30.0  # a sphere of ~4 mm diameter; paper 2 LN volumes are 100-800 mm^3


def voxel_volume_mm3(image: sitk.Image) -> float:
    return float(np.prod(image.GetSpacing()))


def instances_from_probability(probability: sitk.Image, threshold: float = DEFAULT_THRESHOLD,
                               min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
                               fully_connected: bool = False) -> sitk.Image:
    """Instance label map (uint16, 0 = background, 1..N by decreasing size) of voxels with probability >= threshold."""
    if probability.GetPixelID() != sitk.sitkFloat32:  # a float32 map is thresholded as is: no CT-sized copy
        probability = sitk.Cast(probability, sitk.sitkFloat32)
    mask = sitk.BinaryThreshold(probability, lowerThreshold=float(threshold),
                                upperThreshold=float("inf"), insideValue=1, outsideValue=0)
    return instances_from_mask(mask, min_volume_mm3, fully_connected)


def instances_from_mask(mask: sitk.Image, min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
                        fully_connected: bool = False) -> sitk.Image:
    """Connected components of a binary mask as an instance label map, small ones removed."""
    components = sitk.ConnectedComponent(sitk.Cast(mask > 0, sitk.sitkUInt8), fully_connected)
    min_voxels = max(1, math.ceil(min_volume_mm3 / voxel_volume_mm3(mask) - 1e-9))
    labels = sitk.RelabelComponent(components, minimumObjectSize=min_voxels, sortByObjectSize=True)
    labels = sitk.Cast(labels, sitk.sitkUInt16)
    labels.CopyInformation(mask)
    return labels
