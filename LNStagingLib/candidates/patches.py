"""48^3 CT/PET patches at 1 mm around each candidate, sampled straight from the original grids (paper 1, sec. 3).

Why resample from the original grid: one interpolation instead of two (no intermediate 1 mm volume of the whole
scan), and world geometry (origin, spacing, direction) is honoured by ITK, so any image orientation is handled.

Patch geometry. A patch is an ITK grid of ``size`` voxels per axis, isotropic spacing ``spacing_mm * scale``, whose
voxel ``size // 2`` (index 24 for 48) sits exactly on the candidate's LPS centroid, so ``patch[24, 24, 24]`` is the
image value at the candidate. The patch axes are the LPS axes by default (``orientation="lps"``: the network sees
anatomy the same way whatever the file's storage order, e.g. an RAS-stored NIfTI); ``orientation="image"`` uses the
image's own direction matrix instead. Either way the samples are at the right physical points.

Large nodes (paper: "resize the sub-volume so that it contains at least an 8-voxel margin of background"):
    scale = max(1, extent_mm / (spacing_mm * (size - 2 * margin - 1)))
with extent_mm twice the node's largest reach from the candidate centre along the patch axes. The patch then
covers ``size * spacing_mm * scale`` mm and the node spans at most 31 voxels around voxel 24, leaving >= 8 voxels
of background on each side (the centre voxel 24 of 0..47 makes the upper side the short one). ``scale`` is returned per
candidate so it can be shown and reproduced.

Channels: CT (HU clipped to ``ct_window`` and mapped to [0, 1]) and, when PET is given, PET (SUV clipped to
[0, pet_clip] and divided by ``pet_scale``). The candidate's mask patch (for ROI-GAP) comes from an instance label
map (nearest neighbour) or, where a candidate has no mask, from a sphere of ``roi_radius_mm`` around its centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, ImageFormatError
from ..progress import Progress

CT_OUTSIDE_HU = -1024.0  # air outside the scan


@dataclass(frozen=True)
class PatchConfig:
    """How patches are cut. Travels inside the stage-2 checkpoint so inference cuts the same patches."""

    size: int = 48
    spacing_mm: float = 1.0
    margin: int = 8
    ct_window: tuple[float, float] = (-200.0, 300.0)
    pet_clip: float = 20.0
    pet_scale: float = 5.0
    roi_radius_mm: float = 5.0
    orientation: str = "lps"  # "lps" | "image"

    @property
    def centre_index(self) -> int:
        return self.size // 2


@dataclass
class CandidatePatches:
    """Patches of N candidates: images [N, C, S, S, S] (C = 1 CT, or 2 CT+PET), masks [N, 1, S, S, S], scale [N]."""

    images: np.ndarray
    masks: np.ndarray
    scales: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def resize_scales(extents_mm: Optional[Sequence[float]], n: int, config: PatchConfig) -> np.ndarray:
    """Per-candidate patch scale so a node of the given extent keeps a ``margin``-voxel background border.

    With the centre at voxel size//2 the upper side is the short one: a node of half-extent h (in patch voxels)
    reaches index size//2 + h, which must stay <= size - 1 - margin + 0.5, hence the node may span
    ``size - 2 * margin - 1`` voxels (31 for 48 and 8).
    """
    if extents_mm is None:
        return np.ones(n, dtype=np.float64)
    extents = np.nan_to_num(np.asarray(extents_mm, dtype=np.float64), nan=0.0)
    fit = config.spacing_mm * (config.size - 2 * config.margin - 1)
    return np.maximum(1.0, extents / fit)


def patch_direction(image: sitk.Image, config: PatchConfig) -> np.ndarray:
    """The patch axes as a 3x3 direction matrix (columns = axes in LPS)."""
    return np.eye(3) if config.orientation == "lps" else np.asarray(image.GetDirection()).reshape(3, 3)


def label_extents_mm(label_map: sitk.Image, label_ids: Sequence[int], centres_lps: np.ndarray,
                     config: PatchConfig = PatchConfig()) -> np.ndarray:
    """Twice the largest distance (mm, along the patch axes) from each centre to its instance's voxel boundary.

    Measured against the centre actually used for the patch (not the node's own box centre), so an off-centre
    candidate still keeps its margin. 0 for id 0 or an absent label.
    """
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(label_map)
    present = set(stats.GetLabels())
    axes = patch_direction(label_map, config)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64)
    out = np.zeros(len(label_ids))
    for n, lid in enumerate(label_ids):
        if not lid or int(lid) not in present:
            continue
        box = np.asarray(stats.GetBoundingBox(int(lid)), dtype=np.float64)
        index_corners = box[:3] - 0.5 + corners * box[3:]  # voxel boundaries of the bounding box
        points = np.array([label_map.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in index_corners])
        along = (points - np.asarray(centres_lps[n])) @ axes  # coordinates along the patch axes
        out[n] = 2.0 * float(np.max(np.abs(along)))
    return out


def patch_geometry(centre_lps: Sequence[float], scale: float, image: sitk.Image, config: PatchConfig):
    """(origin, spacing, direction) of the patch grid whose voxel centre_index lies on ``centre_lps``."""
    direction = patch_direction(image, config)
    spacing = config.spacing_mm * float(scale)
    origin = np.asarray(centre_lps, dtype=np.float64) - direction @ np.full(3, spacing * config.centre_index)
    return tuple(origin), (spacing,) * 3, tuple(direction.ravel())


class _GridSampler:
    """One configured ResampleImageFilter per image, re-pointed at each candidate (ITK threads each resample)."""

    def __init__(self, image: sitk.Image, config: PatchConfig, interpolator: int, default: float, pixel_type: int):
        self.image = image
        self.config = config
        self.filter = sitk.ResampleImageFilter()
        self.filter.SetSize([config.size] * 3)
        self.filter.SetInterpolator(interpolator)
        self.filter.SetDefaultPixelValue(default)
        self.filter.SetOutputPixelType(pixel_type)
        self.filter.SetTransform(sitk.Transform())

    def sample(self, centre_lps: Sequence[float], scale: float, out: np.ndarray) -> None:
        """Write the patch at ``centre_lps`` into ``out`` [S, S, S] (cast to out's dtype)."""
        origin, spacing, direction = patch_geometry(centre_lps, scale, self.image, self.config)
        self.filter.SetOutputOrigin(origin)
        self.filter.SetOutputSpacing(spacing)
        self.filter.SetOutputDirection(direction)
        patch = self.filter.Execute(self.image)  # keep the image alive while its array view is read
        out[...] = sitk.GetArrayViewFromImage(patch)


def _check_image(image: sitk.Image, what: str) -> None:
    if image.GetDimension() != 3:
        raise ImageFormatError(f"The {what} image must be 3D, it is {image.GetDimension()}D.")


def iter_patch_batches(ct: sitk.Image, centroids_lps: np.ndarray, *, pet: Optional[sitk.Image] = None,
                       label_map: Optional[sitk.Image] = None, label_ids: Optional[Sequence[int]] = None,
                       extents_mm: Optional[Sequence[float]] = None, config: PatchConfig = PatchConfig(),
                       batch_size: int = 32, progress: Optional[Progress] = None) -> Iterator[CandidatePatches]:
    """Yield patches of ``batch_size`` candidates at a time (bounded memory for many candidates).

    centroids_lps: [N, 3] LPS mm. label_map + label_ids: each candidate's instance id in the label map (0 = no mask:
    a sphere of roi_radius_mm is used). extents_mm overrides the node sizes used for resizing (default: from the
    label map when given, else no resizing).
    """
    _check_image(ct, "CT")
    centroids = np.asarray(centroids_lps, dtype=np.float64).reshape(-1, 3)
    n = len(centroids)
    if label_ids is not None and len(label_ids) != n:
        raise GeometryError(f"{len(label_ids)} mask ids were given for {n} candidates; give one id per candidate.")
    ids = np.zeros(n, dtype=np.int64) if label_ids is None else np.asarray(label_ids, dtype=np.int64)
    if extents_mm is None and label_map is not None:
        extents_mm = label_extents_mm(label_map, ids, centroids, config)
    scales = resize_scales(extents_mm, n, config)

    samplers = [_GridSampler(ct, config, sitk.sitkLinear, CT_OUTSIDE_HU, sitk.sitkFloat32)]
    if pet is not None:
        _check_image(pet, "PET")
        samplers.append(_GridSampler(pet, config, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    label_sampler = None
    if label_map is not None:
        label_sampler = _GridSampler(label_map, config, sitk.sitkNearestNeighbor, 0, label_map.GetPixelID())

    s = config.size
    grid = (np.indices((s, s, s), dtype=np.float32) - config.centre_index)
    radius_vox2 = np.sum(grid ** 2, axis=0)  # squared distance to the centre voxel, in voxels
    lo, hi = config.ct_window
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        images = np.empty((stop - start, len(samplers), s, s, s), dtype=np.float32)
        masks = np.zeros((stop - start, 1, s, s, s), dtype=np.float32)
        labels = np.empty((s, s, s), dtype=np.int64)
        for j, i in enumerate(range(start, stop)):
            for c, sampler in enumerate(samplers):
                sampler.sample(centroids[i], scales[i], images[j, c])
            if label_sampler is not None and ids[i] > 0:
                label_sampler.sample(centroids[i], scales[i], labels)
                masks[j, 0] = labels == ids[i]
            if not masks[j, 0].any():  # no mask, or the mask misses the patch: a sphere around the centre
                r = config.roi_radius_mm / (config.spacing_mm * scales[i])
                masks[j, 0] = radius_vox2 <= max(r, 1.0) ** 2
        # Vectorised normalisation of the whole batch.
        np.clip(images[:, 0], lo, hi, out=images[:, 0])
        images[:, 0] -= lo
        images[:, 0] /= hi - lo
        if pet is not None:
            np.clip(images[:, 1], 0.0, config.pet_clip, out=images[:, 1])
            images[:, 1] /= config.pet_scale
        if progress is not None:
            progress.step(stop / max(n, 1), f"patches {stop}/{n}")
        yield CandidatePatches(images, masks, scales[start:stop].astype(np.float32))


def extract_patches(ct: sitk.Image, centroids_lps: np.ndarray, **kwargs) -> CandidatePatches:
    """All candidates' patches at once (see iter_patch_batches for the arguments)."""
    batches = list(iter_patch_batches(ct, centroids_lps, **kwargs))
    if not batches:
        channels = 2 if kwargs.get("pet") is not None else 1
        s = kwargs.get("config", PatchConfig()).size
        return CandidatePatches(np.zeros((0, channels, s, s, s), np.float32), np.zeros((0, 1, s, s, s), np.float32),
                                np.zeros(0, np.float32))
    return CandidatePatches(np.concatenate([b.images for b in batches]), np.concatenate([b.masks for b in batches]),
                            np.concatenate([b.scales for b in batches]))
