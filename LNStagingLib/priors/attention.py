"""The distance-guided attention map of paper 2 (eq. 1 + eq. 2), computed in a band around each structure.

For structure i, D_i is the signed Euclidean distance (mm, negative inside; SimpleITK SignedMaurerDistanceMap
with image spacing) and A_i = f_i(D_i) (eq. 1). A_all is max_i A_i outside every structure and A_i inside
structure i (eq. 2). Since f_i = 0 beyond d_max + border, D_i is only needed within that reach of the
structure: each structure's label map is cropped to its bounding box grown by the reach (+1 voxel), the
distance is computed there and written into the one output volume. The result equals the full-volume
computation (see Testing/test_priors_attention.py and benchmarks/attention_benchmark.py) at a fraction of the
time and memory; at no time are ten full float volumes held.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..anatomy.structures import STRUCTURE_BY_INDEX, STRUCTURES
from ..errors import AnatomyError
from ..progress import Progress
from .profile import AttentionProfile, default_profile
from .trapezoid import trapezoid


def signed_distance_mm(mask: sitk.Image) -> sitk.Image:
    """Signed distance (mm) to the mask boundary: negative inside, positive outside (float32)."""
    return sitk.SignedMaurerDistanceMap(sitk.Cast(mask, sitk.sitkUInt8), insideIsPositive=False,
                                        squaredDistance=False, useImageSpacing=True, backgroundValue=0)


def _band_slices(bbox: tuple[slice, ...], shape: tuple[int, ...], spacing_zyx: tuple[float, ...],
                 reach_mm: float) -> tuple[slice, ...]:
    """The bounding box (numpy z,y,x slices) grown by `reach_mm` (+1 voxel so the boundary is seen), clipped."""
    out = []
    for sl, n, sp in zip(bbox, shape, spacing_zyx):
        pad = int(math.ceil(max(reach_mm, 0.0) / sp)) + 1
        out.append(slice(max(sl.start - pad, 0), min(sl.stop + pad, n)))
    return tuple(out)


def _check_structure_map(structures: sitk.Image) -> np.ndarray:
    if structures.GetDimension() != 3:
        raise AnatomyError("The structure label map must be 3D.")
    array = sitk.GetArrayViewFromImage(structures)
    if array.size == 0 or not array.any():
        raise AnatomyError("The structure label map is empty: none of the 10 structures is present.")
    if array.max() > len(STRUCTURES) or array.min() < 0:
        raise AnatomyError("The structure label map holds values outside 0..10; build it with map_structures().")
    return array


def attention_map(structures: sitk.Image, profile: AttentionProfile | None = None,
                  progress: Progress | None = None) -> sitk.Image:
    """Eq. 2 on the grid of `structures` (M in {0..10}, from anatomy.structures.map_structures); float32 in [0, 1].

    Header (origin, spacing, direction) is that of `structures`. Absent structures simply contribute nothing.
    """
    progress = progress or Progress()
    profile = profile or default_profile()
    labels = _check_structure_map(structures)
    spacing_zyx = tuple(reversed(structures.GetSpacing()))
    out = np.zeros(labels.shape, np.float32)
    boxes = ndimage.find_objects(labels, max_label=len(STRUCTURES))
    present = [(index, box) for index, box in enumerate(boxes, start=1) if box is not None]
    for done, (index, box) in enumerate(present):
        structure = STRUCTURE_BY_INDEX[index]
        progress.step(done / len(present), f"attention: {structure.title}")
        params = profile.params(structure.key)
        band = _band_slices(box, labels.shape, spacing_zyx, params.reach)
        crop_labels = labels[band]
        inside = crop_labels == index
        mask = sitk.GetImageFromArray(inside.view(np.uint8))
        mask.SetSpacing(structures.GetSpacing())  # distances depend on spacing only (direction is orthonormal)
        distance_image = signed_distance_mm(mask)  # keep alive while its array view is used
        distance = sitk.GetArrayViewFromImage(distance_image)
        score = trapezoid(distance, params.d_min, params.d_max, params.border)
        view = out[band]
        np.maximum(view, score, out=view, where=crop_labels == 0)
        np.copyto(view, score, where=inside)
    progress.step(1.0, "attention map done")
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(structures)
    return image


def attention_map_naive(structures: sitk.Image, profile: AttentionProfile | None = None) -> sitk.Image:
    """The straightforward way (reference for tests and the benchmark): ten full-volume signed distance maps,
    ten full-volume trapezoids, a full-volume maximum. Absent structures give A_i = 0 (their distance map is
    undefined)."""
    profile = profile or default_profile()
    labels = _check_structure_map(structures)
    maps = np.zeros((len(STRUCTURES),) + labels.shape, np.float32)
    for structure in STRUCTURES:
        if not np.any(labels == structure.index):
            continue
        mask = sitk.Equal(structures, structure.index)
        params = profile.params(structure.key)
        distance = sitk.GetArrayFromImage(signed_distance_mm(mask))
        maps[structure.index - 1] = trapezoid(distance, params.d_min, params.d_max, params.border)
    combined = maps.max(axis=0)
    inside = labels > 0
    z, y, x = np.nonzero(inside)
    combined[z, y, x] = maps[labels[z, y, x].astype(np.intp) - 1, z, y, x]
    image = sitk.GetImageFromArray(combined)
    image.CopyInformation(structures)
    return image
