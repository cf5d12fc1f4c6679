"""PET-avid lesions without trained weights: the SUV rules nuclear medicine physicians use.

Steps, all on the PET's own grid (where SUVpeak means what PERCIST says):
  1. SUVpeak map: the mean SUV in a 1 ml sphere (radius 6.2 mm) around every voxel (PERCIST).
  2. Peaks: local maxima of the SUV where SUV and SUVpeak reach the threshold (absolute, default SUV 2.5, or
     PERCIST's liver-referenced 1.5 x liver mean + 2 x liver SD when a liver mask is given), at least 12.4 mm (the
     1 ml sphere's diameter) from any hotter peak, and focal: SUVmax >= 2.5 x the median SUV 15-25 mm around
     (of the voxels below the threshold when they are most of that shell: a neighbouring lesion is not background).
  3. Extent: a marker watershed of the SUV splits the hot region between neighbouring peaks (two adjacent neck
     nodes stay two lesions); each lesion is the part of its basin at or above 41 % of its own SUVmax (EANM),
     connected to its peak. Lesions smaller than ``min_volume_ml`` are dropped.
  4. Measurements: SUVmax, SUVpeak, SUVmean, MTV (ml), TLG (= SUVmean x MTV); on a CT (when given) the short and
     long axis (mm) and the mean HU of the lesion resampled onto the CT grid.

Which lesions are node candidates (physiological uptake, the primary tumour) is decided in
``candidates/physiological.py``; this module only finds and measures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputFileError

DEFAULT_SUV_THRESHOLD = 2.5
PEAK_SPHERE_ML = 1.0
EANM_FRACTION = 0.41
DEFAULT_MIN_VOLUME_ML = 0.1
DEFAULT_MIN_SEPARATION_MM = 12.4  # the diameter of the 1 ml SUVpeak sphere
DEFAULT_MIN_CONTRAST = 2.5
MAX_REACH_MM = 60.0  # a lesion extends at most this far from its peak along each axis
BACKGROUND_SHELL_MM = (15.0, 25.0)
SHELL_QUIET_FRACTION = 0.5  # most of the shell below the threshold: its avid voxels are other lesions (issue 28)
PEAK_RADIUS_MM = 6.2  # radius of the 1 ml SUVpeak sphere


@dataclass
class PetLesion:
    """One PET-avid lesion. Coordinates in LPS mm; ``peak_lps`` is the centre of its SUVpeak sphere."""

    id: int
    centroid_lps: tuple[float, float, float]
    peak_lps: tuple[float, float, float]
    suv_max: float
    suv_peak: float
    suv_mean: float
    mtv_ml: float
    tlg: float
    background_suv: float = float("nan")  # median SUV in a shell 15-25 mm around the peak
    short_axis_mm: float = float("nan")
    long_axis_mm: float = float("nan")
    mean_hu: float = float("nan")
    where: str = "candidate"  # candidate | primary | large_lesion | outside_site | <organ name> (physiological)
    how: str = ""  # why it is not a candidate: "mask" (organ mask), "heuristic", "tumour mask", the size, the region

    @property
    def reason(self) -> str:
        """Why it is not in the node list, as other_findings.csv says it: the ``where`` of a primary, large lesion or
        lesion outside the site; 'physiological' for an organ's uptake; '' for a node candidate."""
        if self.where in ("candidate", "primary", "large_lesion", "outside_site"):
            return "" if self.where == "candidate" else self.where
        return "physiological"

    @property
    def radius_mm(self) -> float:
        """Radius of the sphere with the lesion's MTV (for candidate files that paint spheres)."""
        return float((3.0 * self.mtv_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0))

    def row(self) -> dict:
        row = asdict(self)
        row["radius_mm"] = self.radius_mm
        return row


@dataclass
class PetDetection:
    """What the detector found: every lesion (candidates, primary, physiological) and its label map on the PET grid."""

    lesions: list[PetLesion]
    labels: sitk.Image  # uint16 on the PET grid; value = lesion id (every lesion, whatever its ``where``)
    threshold: float
    threshold_rule: str  # e.g. "absolute SUV 2.5" or "PERCIST liver: 1.5 x 2.10 + 2 x 0.35 = 3.85"
    notes: list[str] = field(default_factory=list)

    @property
    def candidates(self) -> list[PetLesion]:
        return [lesion for lesion in self.lesions if lesion.where == "candidate"]

    @property
    def primary(self) -> list[PetLesion]:
        return [lesion for lesion in self.lesions if lesion.where == "primary"]

    @property
    def other_findings(self) -> list[PetLesion]:
        """Everything not in the node list: primary, large lesions, outside the site, physiological uptake."""
        return [lesion for lesion in self.lesions if lesion.where != "candidate"]

    def excluded_by_organ(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for lesion in self.lesions:
            if lesion.reason == "physiological":
                counts[lesion.where] = counts.get(lesion.where, 0) + 1
        return counts


def sphere_kernel(spacing_xyz, volume_ml: float = PEAK_SPHERE_ML) -> np.ndarray:
    """Boolean [z, y, x] kernel of the voxels whose centres lie in a sphere of ``volume_ml`` (1 ml: r = 6.2 mm)."""
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    spacing = np.asarray(spacing_xyz, float)[::-1]
    half = np.floor(radius / spacing).astype(int)
    grids = np.meshgrid(*(np.arange(-h, h + 1) * s for h, s in zip(half, spacing)), indexing="ij")
    return sum(g ** 2 for g in grids) <= radius ** 2


def _peak_weights(spacing_xyz) -> np.ndarray:
    kernel = sphere_kernel(spacing_xyz)
    return kernel.astype(np.float32) / kernel.sum()


def suv_peak_map(suv: np.ndarray, spacing_xyz) -> np.ndarray:
    """Mean SUV in a 1 ml sphere around each voxel (outside the image counts as 0, as outside the body)."""
    return ndimage.correlate(suv, _peak_weights(spacing_xyz), mode="constant", cval=0.0)


def suv_peak_at(suv: np.ndarray, index: np.ndarray, spacing_xyz) -> np.ndarray:
    """``suv_peak_map(suv, spacing_xyz)[tuple(index.T)]`` without the map: the same sums (float64, kernel voxels in
    the same order as scipy's correlate, outside the image 0) at the given voxels only. The detector needs SUVpeak at
    the local maxima above the threshold, a few thousand voxels of a 15-million-voxel whole-body PET."""
    weights = _peak_weights(spacing_xyz).astype(np.float64)
    half = np.array(weights.shape) // 2
    index = np.asarray(index, np.intp).reshape(-1, 3)
    total = np.zeros(len(index), np.float64)
    shape = np.array(suv.shape)
    for offset in np.argwhere(weights != 0):  # raster order, as correlate walks its footprint
        at = index + (offset - half)
        inside = np.all((at >= 0) & (at < shape), axis=1)
        sample = np.zeros(len(index), np.float64)
        sample[inside] = suv[tuple(at[inside].T)]
        total += sample * weights[tuple(offset)]
    return total.astype(suv.dtype)


def local_maxima_above(values: np.ndarray, threshold: float) -> np.ndarray:
    """Voxels (numpy index, raster order) at or above ``threshold`` that no 3x3x3 neighbour exceeds: the same set as
    ``values == maximum_filter(values, 3)`` restricted to the threshold, without filtering the whole volume."""
    index = np.argwhere(values >= threshold)
    keep = np.ones(len(index), bool)
    shape = np.array(values.shape)
    centre = values[tuple(index.T)]
    for offset in np.argwhere(np.ones((3, 3, 3), bool)) - 1:
        if not offset.any():
            continue
        at = index + offset
        inside = np.all((at >= 0) & (at < shape), axis=1)
        keep[inside] &= centre[inside] >= values[tuple(at[inside].T)]
    return index[keep]


def liver_threshold(suv: np.ndarray, liver: np.ndarray, spacing_xyz) -> tuple[float, str]:
    """PERCIST: 1.5 x mean + 2 x SD of the liver, measured in a 3 cm sphere in the liver's interior (its most
    interior point, far from the hilum and the edges where partial volume lowers the values)."""
    if not liver.any():
        raise InputFileError("the liver mask is empty: PERCIST's liver-referenced threshold needs the liver; give "
                             "organ masks with the liver or use --threshold 2.5.")
    spacing = np.asarray(spacing_xyz, float)[::-1]
    depth = ndimage.distance_transform_edt(liver, sampling=spacing)
    centre = np.unravel_index(int(np.argmax(depth)), liver.shape)
    grids = np.meshgrid(*(np.arange(n) for n in liver.shape), indexing="ij")
    distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing)))
    voi = (distance <= 15.0) & liver
    values = suv[voi]
    mean, sd = float(values.mean()), float(values.std())
    threshold = 1.5 * mean + 2.0 * sd
    return threshold, f"PERCIST liver: 1.5 x {mean:.2f} + 2 x {sd:.2f} = {threshold:.2f}"


def _peaks(values: np.ndarray, threshold: float, spacing_xyz,
           min_separation_mm: float) -> list[tuple[tuple[int, int, int], float]]:
    """Peak voxels (numpy index) and their SUVpeak, hottest first: local maxima of the SUV (3x3x3) where SUV and
    SUVpeak reach the threshold, each at least ``min_separation_mm`` from every hotter peak kept (greedy non-maximum
    suppression: two maxima closer than a 1 ml sphere's diameter are one lesion; a node beside a hotter node keeps
    its own peak). SUVpeak is computed at the local maxima only (``suv_peak_at``)."""
    from scipy.spatial import cKDTree

    index = local_maxima_above(values, threshold)
    peak = suv_peak_at(values, index, spacing_xyz)
    index, peak = index[peak >= threshold], peak[peak >= threshold]
    if not len(index):
        return []
    order = np.argsort(-values[tuple(index.T)], kind="stable")
    index, peak = index[order], peak[order]
    points = index * np.asarray(spacing_xyz, float)[::-1]
    neighbours = cKDTree(points).query_ball_point(points, r=min_separation_mm)
    suppressed = np.zeros(len(index), bool)
    kept = []
    for i in range(len(index)):
        if suppressed[i]:
            continue
        kept.append((tuple(int(v) for v in index[i]), float(peak[i])))
        suppressed[neighbours[i]] = True
    return kept


def _axes_on_ct(mask: np.ndarray, ct_grid: sitk.Image) -> tuple[float, float]:
    """Short and long axis (mm) of a binary mask on the CT grid, in its largest axial slice."""
    from .measure import axial_axis, short_axis_mm

    short = short_axis_mm(mask, ct_grid)
    axis = axial_axis(ct_grid)
    areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    slice_mask = np.take(mask, int(np.argmax(areas)), axis=axis)
    index = np.argwhere(slice_mask)
    in_plane = [a for a in range(3) if a != axis]
    spacing = np.array(ct_grid.GetSpacing())[::-1]
    direction = np.array(ct_grid.GetDirection()).reshape(3, 3)[:, ::-1]
    basis = direction[:, in_plane] * spacing[in_plane]
    points = index @ basis.T
    if len(points) < 2:
        return short, short
    centred = points - points.mean(axis=0)
    major = np.linalg.svd(centred, full_matrices=False)[2][0]
    projections = points @ major
    return short, float(projections.max() - projections.min() + np.sum(np.abs(basis.T @ major)))


def measure_on_ct(detection: PetDetection, ct: sitk.Image) -> sitk.Image:
    """Short/long axis and mean HU of every lesion on the CT grid; returns the lesion labels on that grid."""
    from ..io.resample import resample_to_reference

    labels = resample_to_reference(detection.labels, ct, "nearest", 0)
    array = sitk.GetArrayViewFromImage(labels)
    hu = sitk.GetArrayViewFromImage(ct)
    boxes = ndimage.find_objects(array)
    for lesion in detection.lesions:
        box = boxes[lesion.id - 1] if lesion.id - 1 < len(boxes) else None
        if box is None:
            continue
        mask = array[box] == lesion.id
        crop = sitk.RegionOfInterest(labels, [s.stop - s.start for s in box[::-1]], [s.start for s in box[::-1]])
        lesion.short_axis_mm, lesion.long_axis_mm = _axes_on_ct(mask, crop)
        lesion.mean_hu = float(hu[box][mask].mean())
    return labels


def _shell_median(values: np.ndarray, at, spacing_xyz, inner_mm: float = BACKGROUND_SHELL_MM[0],
                  outer_mm: float = BACKGROUND_SHELL_MM[1], avid: float = float("inf")) -> float:
    """Median SUV in a spherical shell around ``at``: the lesion's surroundings. When most of the shell is below
    ``avid`` (the detection threshold), the median of those voxels only: the shell's avid voxels are then other
    lesions (a hotter node beside a small one), not its background. When most of the shell is avid (brain, a hot
    liver), the whole shell: the peak is compared with the diffuse uptake it sits in."""
    spacing = np.asarray(spacing_xyz, float)[::-1]
    half = np.ceil(outer_mm / spacing).astype(int)
    box = tuple(slice(max(a - h, 0), min(a + h + 1, n)) for a, h, n in zip(at, half, values.shape))
    grids = np.meshgrid(*(((np.arange(b.start, b.stop) - a) * s) for a, b, s in zip(at, box, spacing)), indexing="ij")
    radius = np.sqrt(sum(g ** 2 for g in grids))
    shell = values[box][(radius >= inner_mm) & (radius <= outer_mm)]
    quiet = shell[shell < avid]
    if quiet.size > SHELL_QUIET_FRACTION * shell.size:
        return float(np.median(quiet))
    return float(np.median(shell)) if shell.size else float("nan")


def _grow(values: np.ndarray, at: tuple[int, int, int], cut: float, half: np.ndarray) -> tuple[tuple, np.ndarray]:
    """The box of ``half`` voxels around ``at`` and the part of it at or above ``cut`` connected to ``at``."""
    box = tuple(slice(max(a - h, 0), min(a + h + 1, n)) for a, h, n in zip(at, half, values.shape))
    parts, _ = ndimage.label(values[box] >= cut, structure=np.ones((3, 3, 3)))
    local = tuple(a - s.start for a, s in zip(at, box))
    return box, parts == parts[local] if parts[local] else np.zeros(parts.shape, bool)


def _split_between_peaks(values: np.ndarray, regions: list, at: list, reference: sitk.Image) -> list:
    """Where the 41 % regions of several peaks touch, a marker watershed of the SUV (on the crop of the touching
    group only) gives each voxel to one peak: neighbouring nodes stay separate lesions."""
    owner = np.zeros(values.shape, np.int32)
    group = list(range(len(regions)))  # union-find over peaks whose regions overlap

    def find(i):
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i, (box, region) in enumerate(regions):
        previous = owner[box][region]
        for j in np.unique(previous[previous > 0]) - 1:
            group[find(int(j))] = find(i)
        owner[box][region] = i + 1
    members: dict[int, list[int]] = {}
    for i in range(len(regions)):
        members.setdefault(find(i), []).append(i)
    for ids in members.values():
        if len(ids) < 2:
            continue
        crop = tuple(slice(min(regions[i][0][a].start for i in ids), max(regions[i][0][a].stop for i in ids))
                     for a in range(3))
        union = np.zeros(tuple(s.stop - s.start for s in crop), bool)
        markers = np.zeros(union.shape, np.uint32)
        for i in ids:
            box, region = regions[i]
            local = tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(box, crop))
            union[local] |= region
        for i in ids:
            markers[tuple(a - c.start for a, c in zip(at[i], crop))] = i + 1
        relief = sitk.GetImageFromArray(np.where(union, -values[crop], 0.0).astype(np.float32))
        basins = sitk.GetArrayFromImage(sitk.MorphologicalWatershedFromMarkers(
            relief, sitk.GetImageFromArray(markers), markWatershedLine=False, fullyConnected=True))
        for i in ids:
            box, region = regions[i]
            local = tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(box, crop))
            mine = region & (basins[local] == i + 1)
            parts, _ = ndimage.label(mine, structure=np.ones((3, 3, 3)))
            centre = tuple(a - b.start for a, b in zip(at[i], box))
            regions[i] = (box, parts == parts[centre] if parts[centre] else np.zeros(mine.shape, bool))
    return regions


def detect_pet_lesions(suv: sitk.Image, *, threshold: float | None = DEFAULT_SUV_THRESHOLD,
                       liver: Optional[sitk.Image] = None, min_volume_ml: float = DEFAULT_MIN_VOLUME_ML,
                       min_separation_mm: float = DEFAULT_MIN_SEPARATION_MM,
                       min_contrast: float = DEFAULT_MIN_CONTRAST) -> PetDetection:
    """Find and measure PET-avid lesions on ``suv`` (SUVbw, any grid; the PET's own grid is the right one).

    ``threshold``: absolute SUVpeak threshold, or None for PERCIST's liver-referenced one (needs ``liver``, a mask on
    the SUV grid). A lesion's extent is limited to ``MAX_REACH_MM`` around its peak: no lymph node is larger, and a
    faint lesion's 41 % contour would otherwise run into the blood pool (a bulky primary's MTV is then a lower bound).
    """
    values = sitk.GetArrayFromImage(sitk.Cast(suv, sitk.sitkFloat32))
    spacing = suv.GetSpacing()
    if threshold is None:
        if liver is None:
            raise InputFileError("the liver-referenced threshold (PERCIST) needs a liver mask: give organ masks "
                                 "(--organs) that include the liver, or use --threshold 2.5.")
        threshold, rule = liver_threshold(values, sitk.GetArrayViewFromImage(liver) > 0, spacing)
    else:
        rule = f"absolute SUVpeak {threshold:g}"
    at, backgrounds, peaks = [], [], []
    for a, suv_peak in _peaks(values, threshold, spacing, min_separation_mm):
        background = _shell_median(values, a, spacing, avid=threshold)
        if values[a] < min_contrast * background:
            continue  # not focal: as hot as its surroundings (brain cortex, liver, marrow, blood pool noise)
        at.append(a)
        backgrounds.append(background)
        peaks.append(suv_peak)
    half = np.ceil(MAX_REACH_MM / np.asarray(spacing)[::-1]).astype(int)
    near = np.ceil(PEAK_RADIUS_MM / np.asarray(spacing)[::-1]).astype(int)
    regions = []
    for a in at:
        around = tuple(slice(max(i - h, 0), i + h + 1) for i, h in zip(a, near))
        regions.append(_grow(values, a, max(EANM_FRACTION * float(values[around].max()), threshold), half))
    regions = _split_between_peaks(values, regions, at, suv)
    labels = np.zeros(values.shape, np.uint16)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    min_voxels = max(1, math.ceil(min_volume_ml / voxel_ml - 1e-9))
    lesions: list[PetLesion] = []
    for a, background, suv_peak, (box, region) in zip(at, backgrounds, peaks, regions):
        if region.sum() < min_voxels:
            continue
        lesion_id = len(lesions) + 1
        labels[box][region & (labels[box] == 0)] = lesion_id
        suv_region = values[box][region]
        index = np.argwhere(region) + np.array([s.start for s in box])
        centroid = suv.TransformContinuousIndexToPhysicalPoint(index.mean(axis=0)[::-1].tolist())
        mean, mtv = float(suv_region.mean()), float(region.sum() * voxel_ml)
        lesions.append(PetLesion(
            id=lesion_id, centroid_lps=tuple(centroid),
            peak_lps=tuple(suv.TransformIndexToPhysicalPoint([int(v) for v in a[::-1]])),
            suv_max=float(suv_region.max()), suv_peak=suv_peak, suv_mean=mean, mtv_ml=mtv, tlg=mean * mtv,
            background_suv=background))
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(suv)
    return PetDetection(lesions, label_image, float(threshold), rule)
