"""Normalised z (0 at the lung base, 1 at the lung apex) from whatever landmarks a scan shows.

Paper 1 takes z from a body-part regressor; ours is anatomical (anatomy/body.py). The lung apex and base define
the scale, but many scans show only one of them (an abdominal PET/CT misses the apex). Every landmark that lies
inside the scan (not cut by its first or last slice) is placed on the lung base (0) - apex (1) scale at its typical
position, and the scale is fitted to them by least squares (z_mm = base + position * (apex - base)). With both lung
landmarks in the scan the result is exactly the lung frame. The landmarks used are recorded per case (``ZFrame.source``).

Typical positions, for an adult's spine (approximations, not measurements of this cohort): the lung apex at the upper
end plate of T1, the lung base (posterior costophrenic recess) at the lower end plate of T12, vertebrae of equal
height (each 1/12 of the scale, lumbar and cervical too), the liver dome at the upper end plate of T10 (0.25), the top
of the aortic arch at the upper end plate of T4 (0.75). A fit needs landmarks at least 0.2 apart on the scale and a
lung height of 100-500 mm; otherwise z is reported missing with the reason, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .body import points_z_extent
from .structures import OrganLabels, load_mapping, normalise_name

MIN_SPAN = 0.2  # landmarks closer than this on the 0-1 scale give no usable scale
HEIGHT_RANGE_MM = (100.0, 500.0)  # lung base to apex; outside this the fit is not an adult thorax

VERTEBRAE = tuple([f"C{k}" for k in range(1, 8)] + [f"T{k}" for k in range(1, 13)] + [f"L{k}" for k in range(1, 6)]
                  + ["S1"])


def vertebra_end_plates(name: str) -> tuple[float, float]:
    """(upper, lower) end plate of a vertebra on the lung scale: T1 upper = 1, T12 lower = 0, 1/12 per vertebra."""
    index = VERTEBRAE.index(name) - VERTEBRAE.index("T1")  # T1 -> 0, T12 -> 11, L1 -> 12, C7 -> -1
    return 1.0 - index / 12.0, 1.0 - (index + 1) / 12.0


ORGAN_TOPS = {"liver": ("liver dome", 0.25), "aorta": ("top of the aortic arch", 0.75)}


@dataclass(frozen=True)
class Landmark:
    name: str
    z_mm: float  # world z (LPS, + superior)
    position: float  # typical place on the lung base (0) - apex (1) scale


@dataclass(frozen=True)
class ZFrame:
    """The fitted lung scale of one scan and the landmarks it rests on."""

    base_z: float
    apex_z: float
    landmarks: tuple[Landmark, ...]

    @property
    def source(self) -> str:
        return ", ".join(landmark.name for landmark in self.landmarks)

    def normalise(self, z_mm) -> np.ndarray:
        return (np.asarray(z_mm, np.float64) - self.base_z) / (self.apex_z - self.base_z)


def z_extent(mask: sitk.Image) -> tuple[float, float, bool, bool] | None:
    """(lowest z, highest z, low end cut by the scan, high end cut by the scan) of a mask; None when empty.
    An end is cut when the mask reaches the first or last slice along an image axis with a z component."""
    index = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)
    return points_z_extent(mask, index) if len(index) else None


def _organ_extents(organs: sitk.Image, values: dict[str, tuple[int, ...]]) -> dict[str, tuple]:
    """z extent of each named group of label values, from the bounding boxes of the labels (one pass)."""
    array = sitk.GetArrayViewFromImage(organs)
    wanted = sorted({v for group in values.values() for v in group if v > 0})
    if not wanted:
        return {}
    boxes = ndimage.find_objects(array, max_label=max(wanted))
    out = {}
    for key, group in values.items():
        points = []
        for value in group:
            box = boxes[value - 1] if 0 < value <= len(boxes) else None
            if box is not None:
                local = np.argwhere(array[box] == value)
                points.append(local + np.array([sl.start for sl in box]))
        if points:
            out[key] = points_z_extent(organs, np.concatenate(points))
    return out


def find_landmarks(lung: sitk.Image | None, organs: sitk.Image | None = None,
                   organ_values: dict[str, tuple[int, ...]] | None = None) -> list[Landmark]:
    """Every landmark inside the scan: lung base/apex from the lung mask; from an organ label map and the values of
    its 'liver' (the dome), 'aorta' (the top of its arch) and vertebrae 'C1'..'S1' (their end plates)."""
    found: list[Landmark] = []
    extent = None if lung is None else z_extent(lung)
    if extent is not None:
        low, high, low_cut, high_cut = extent
        if not low_cut:
            found.append(Landmark("lung base", low, 0.0))
        if not high_cut:
            found.append(Landmark("lung apex", high, 1.0))
    extents = {} if organs is None or not organ_values else _organ_extents(organs, organ_values)
    for key, (low, high, low_cut, high_cut) in sorted(extents.items(), key=lambda item: -item[1][1]):
        if key in ORGAN_TOPS and not high_cut:
            name, position = ORGAN_TOPS[key]
            found.append(Landmark(name, high, position))
        elif key in VERTEBRAE:
            upper, lower = vertebra_end_plates(key)
            if not high_cut:
                found.append(Landmark(f"{key} upper end plate", high, upper))
            if not low_cut:
                found.append(Landmark(f"{key} lower end plate", low, lower))
    return found


# Label values of the landmark organs in the built-in conventions (TotalSegmentator v2 'total': liver 5, aorta 52,
# vertebrae 26 S1, 27 L5 ... 31 L1, 32 T12 ... 43 T1, 44 C7 ... 50 C1; pdac20: liver 6, aorta 8).
LANDMARK_IDS = {
    "totalsegmentator": {"liver": (5,), "aorta": (52,), **{name: (50 - i,) for i, name in enumerate(VERTEBRAE)}},
    "pdac20": {"liver": (6,), "aorta": (8,)},
}


def _landmark_key(name: str) -> str | None:
    """'liver.nii.gz' -> 'liver', 'vertebrae_T12' / 'T12 vertebra' -> 'T12', 'Aorta' -> 'aorta'."""
    words = normalise_name(name).split()
    if words == ["liver"]:
        return "liver"
    if words in (["aorta"], ["thoracic", "aorta"], ["aorta", "thoracic"]):
        return "aorta"
    rest = [w for w in words if w not in ("vertebra", "vertebrae", "vertebral", "body")]
    if len(rest) == 1 and rest[0].upper() in VERTEBRAE:
        return rest[0].upper()
    return None


def landmark_values(organs: OrganLabels, mapping=None) -> dict[str, tuple[int, ...]]:
    """Which label values of an organ label map are the landmark organs: by the names it carries (mask files,
    segment names), else by the values of a built-in convention."""
    if organs.names:
        out: dict[str, list[int]] = {}
        for value, name in organs.names.items():
            key = _landmark_key(name)
            if key:
                out.setdefault(key, []).append(int(value))
        return {key: tuple(values) for key, values in out.items()}
    return dict(LANDMARK_IDS.get(load_mapping(mapping).name, {}))


def fit_z_frame(landmarks: list[Landmark]) -> ZFrame | str:
    """The lung scale fitted to the landmarks, or a sentence saying why it cannot be."""
    by_name = {landmark.name: landmark for landmark in landmarks}
    if "lung base" in by_name and "lung apex" in by_name:  # both ends imaged: the lung frame itself
        base, apex = by_name["lung base"], by_name["lung apex"]
        if apex.z_mm > base.z_mm:
            return ZFrame(base.z_mm, apex.z_mm, (base, apex))
    if not landmarks:
        return ("normalised z needs landmarks inside the scan (lung apex or base, liver dome, aortic arch, vertebrae); "
                "none is imaged whole")
    positions = np.array([landmark.position for landmark in landmarks])
    shown = ", ".join(landmark.name for landmark in landmarks)
    if positions.max() - positions.min() < MIN_SPAN:
        unseen = " and ".join(end for end in ("lung apex", "lung base") if end not in by_name)
        return (f"normalised z needs landmarks far apart along the body; this scan shows only {shown} ({unseen} not "
                "imaged; add organ masks with the liver, aorta or vertebrae, e.g. from TotalSegmentator)")
    design = np.stack([np.ones_like(positions), positions], axis=1)
    (base, height), *_ = np.linalg.lstsq(design, np.array([landmark.z_mm for landmark in landmarks]), rcond=None)
    if not HEIGHT_RANGE_MM[0] <= height <= HEIGHT_RANGE_MM[1]:
        return (f"the landmarks of this scan ({shown}) give a lung height of {height:.0f} mm, outside "
                f"{HEIGHT_RANGE_MM[0]:.0f}-{HEIGHT_RANGE_MM[1]:.0f} mm; normalised z not computed")
    return ZFrame(float(base), float(base + height), tuple(landmarks))
