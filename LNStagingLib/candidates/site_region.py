"""The site's nodal region: candidates inside it stay in the node list, the others go to other findings.

A region is a cranio-caudal slab (LPS z), placed on the vertebral scale of anatomy/landmarks.py (T1's upper end plate
at the lung apex, T12's lower end plate at the lung base, vertebrae of equal height V = (T1 - T12) / 12), from the
landmarks the scan shows:
- PET alone: the shoulder line (the first axial level, from the head down, where the body outline widens from a neck
  of <= 220 mm to shoulders of >= 250 mm within 20 mm: the acromion, ~T1), the kidneys' upper poles (~T12; the kidney
  pair the physiological rules or the organ masks found), the heart's centre (~T8).
- CT (``--ct``) and organ masks (``--organs``): the lung scale of anatomy/landmarks.py fitted to the lung apex and
  base, the vertebrae (C1-S1 end plates), the liver dome and the aortic arch the scan shows whole; it takes
  precedence.
With one of T1 and T12 only, V = 25 mm (an adult thoracic vertebra with its disc).

Boundaries (head to feet), each a nodal atlas's region plus about one vertebra for the landmark's placement:
- head-neck: everything above T1 - 4V. The cervical levels I-VI end at the clavicles and the manubrium (Gregoire et
  al. 2014, Radiother Oncol 110:172), level VII (upper mediastinal) at the innominate artery (~T3-T4).
- thorax: T1 + 1V to T12 - 1V. Mediastinal stations 1-14 (IASLC map, Rusch et al. 2009): station 1 (low cervical,
  supraclavicular) above the manubrium down to the diaphragm; the posterior costophrenic recess reaches T12-L1.
- abdomen: T12 + 3V to T12 - 6V: from the diaphragm's dome (T9-T10; the liver dome at T10) to below the aortic
  bifurcation (L4) and the common iliac nodes (L5).
- pelvis: T12 - 4V (L4: aortic bifurcation, common iliac nodes) to 100 mm below the bladder's lowest voxel (the
  inguinal and femoral nodes of the femoral triangle) or, without a bladder, T12 - 14V.
A boundary whose landmarks are all missing is not guessed, nor are landmarks that disagree (T1 - T12 outside
100-500 mm, anatomy/landmarks.py's adult range): the region is then not found and the node list stays whole (one line
says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..anatomy.landmarks import HEIGHT_RANGE_MM
from ..errors import LNStagingError
from .pet_lesions import PetDetection

SITES = ("head-neck", "thorax", "abdomen", "pelvis")
TYPICAL_VERTEBRA_MM = 25.0  # an adult thoracic vertebra with its disc (T1-T12 is ~ 28-30 cm)
NECK_MAX_WIDTH_MM = 220.0  # widest neck level on the PET's outline (QIN: 187-197 mm with the trapezius)
SHOULDER_MIN_WIDTH_MM = 250.0  # biacromial breadth of an adult is 35-40 cm; the outline at the acromion >= 25 cm
SHOULDER_RISE_MM = 20.0  # the widening from neck to shoulders happens within this height
BODY_SUV = 0.3  # tissue, not air (as the bladder and kidney rules)
INGUINAL_BELOW_BLADDER_MM = 100.0
SITE_ALIASES = {"head-and-neck": "head-neck", "head and neck": "head-neck", "headneck": "head-neck",
                "neck": "head-neck", "chest": "thorax", "lung": "thorax", "pelvic": "pelvis"}


def nodal_site(text: Optional[str]) -> Optional[str]:
    """'head-and-neck', 'abdomen/pancreas', 'Thorax' -> one of SITES; None for no site or one outside the four."""
    if not text:
        return None
    name = str(text).strip().lower().split("/")[0].strip()
    name = SITE_ALIASES.get(name, name)
    return name if name in SITES else None


@dataclass
class Landmarks:
    """Levels (LPS z, mm) of the vertebral scale and where each came from."""

    t1: Optional[float] = None
    t12: Optional[float] = None
    bladder_bottom: Optional[float] = None
    sources: list[str] = field(default_factory=list)

    @property
    def vertebra_mm(self) -> float:
        if self.t1 is not None and self.t12 is not None and self.t1 > self.t12:
            return (self.t1 - self.t12) / 12.0
        return TYPICAL_VERTEBRA_MM


def _axial_levels(image: sitk.Image) -> tuple[int, np.ndarray]:
    """The numpy axis closest to the patient's S axis and the LPS z of each of its slices."""
    from .measure import axial_axis

    axis = axial_axis(image)
    index = np.zeros((image.GetSize()[2 - axis], 3))
    index[:, 2 - axis] = np.arange(image.GetSize()[2 - axis])
    direction = np.array(image.GetDirection()).reshape(3, 3)
    z = image.GetOrigin()[2] + (index * np.asarray(image.GetSpacing())) @ direction[2]
    return axis, z


def shoulder_line(suv: sitk.Image) -> Optional[float]:
    """LPS z of the shoulder line on the PET's body outline (module doc), or None when the scan shows no neck
    widening into shoulders (no neck imaged, or arms beside the head joining the outline)."""
    from ..anatomy.body import world_points

    axis, z = _axial_levels(suv)
    values = sitk.GetArrayViewFromImage(suv)
    widths = np.zeros(len(z))
    for k in range(len(z)):
        plane = ndimage.binary_opening(np.take(values, k, axis=axis) > BODY_SUV)
        parts, n = ndimage.label(plane)
        if not n:
            continue
        largest = np.argmax(ndimage.sum(plane, parts, range(1, n + 1))) + 1
        index = np.insert(np.argwhere(parts == largest), axis, k, axis=1)
        x = world_points(suv, index)[:, 0]
        widths[k] = x.max() - x.min() + suv.GetSpacing()[0]
    order = np.argsort(-z)  # head to feet
    for position, k in enumerate(order):
        above = [j for j in order[:position] if 0 < z[j] - z[k] <= SHOULDER_RISE_MM]
        if (widths[k] >= SHOULDER_MIN_WIDTH_MM and above
                and 0 < min(widths[j] for j in above) <= NECK_MAX_WIDTH_MM):
            return float(z[k])
    return None


def _z_range(mask: np.ndarray, image: sitk.Image) -> Optional[tuple[float, float]]:
    from ..anatomy.body import world_points

    index = np.argwhere(mask)
    if not len(index):
        return None
    z = world_points(image, index)[:, 2]
    return float(z.min()), float(z.max())


def ct_frame(ct: Optional[sitk.Image], organs=None, organ_mapping: Optional[str] = None):
    """The lung scale (anatomy/landmarks.py: T12's lower end plate to T1's upper) from the CT's lungs and the organ
    masks' vertebrae, liver dome and aortic arch, only from landmarks the scan shows whole; None without a fit."""
    from ..anatomy.landmarks import ZFrame, find_landmarks as anatomy_landmarks, fit_z_frame, landmark_values

    lungs = image = values = None
    if ct is not None:
        from ..anatomy.lung import lung_mask

        try:
            lungs = lung_mask(ct)
        except LNStagingError:  # a CT without lungs (a limb, the pelvis): other landmarks place the region
            lungs = None
    if organs is not None:
        from ..anatomy.structures import read_organs

        labels = read_organs(organs)
        image, values = labels.image, landmark_values(labels, organ_mapping)
    if lungs is None and image is None:
        return None
    frame = fit_z_frame(anatomy_landmarks(lungs, image, values))
    return frame if isinstance(frame, ZFrame) else None


def find_landmarks(detection: PetDetection, suv: sitk.Image, organ_masks: dict[str, np.ndarray],
                   ct: Optional[sitk.Image] = None, organs=None, organ_mapping: Optional[str] = None) -> Landmarks:
    """T1, T12 and the bladder's lowest level: from the CT's lungs and the organ masks' vertebrae (the lung scale of
    anatomy/landmarks.py) first, else from the PET's shoulder line, kidneys and heart; the bladder from its rule or
    mask."""
    found = Landmarks()
    labels = sitk.GetArrayViewFromImage(detection.labels)

    def organ(name: str) -> Optional[tuple[float, float]]:
        if name in organ_masks:
            return _z_range(organ_masks[name], suv)
        ids = [lesion.id for lesion in detection.lesions if lesion.where == name]
        return _z_range(np.isin(labels, ids), suv) if ids else None

    frame = ct_frame(ct, organs, organ_mapping)
    if frame is not None:
        found.t12, found.t1 = frame.base_z, frame.apex_z
        found.sources.append(f"CT / organ masks: {frame.source}")
    if found.t1 is None:
        shoulders = shoulder_line(suv)
        if shoulders is not None:
            found.t1 = shoulders
            found.sources.append("shoulder line on the PET (T1)")
    kidneys = organ("kidney")
    if found.t12 is None and kidneys is not None:
        found.t12 = kidneys[1]
        found.sources.append("kidneys' upper poles (T12)")
    if found.t1 is not None and found.t12 is not None and not HEIGHT_RANGE_MM[0] <= found.t1 - found.t12 <= \
            HEIGHT_RANGE_MM[1]:  # an adult's T1-T12 (the lung height of anatomy/landmarks.py): they disagree
        found.sources = [f"{', '.join(found.sources)} disagree: T1 - T12 = {found.t1 - found.t12:.0f} mm, not "
                         f"{HEIGHT_RANGE_MM[0]:.0f}-{HEIGHT_RANGE_MM[1]:.0f} mm"]
        found.t1 = found.t12 = None
        return found
    heart = organ("heart")
    if heart is not None and (found.t1 is None or found.t12 is None):
        centre = (heart[0] + heart[1]) / 2.0  # T8: 7 vertebrae below T1's upper plate, 4 above T12's lower plate
        if found.t1 is None:
            found.t1 = centre + 7.5 * found.vertebra_mm
        if found.t12 is None:
            found.t12 = centre - 4.5 * found.vertebra_mm
        found.sources.append("heart (centre T8)")
    if found.t1 is None and found.t12 is not None:
        found.t1 = found.t12 + 12.0 * TYPICAL_VERTEBRA_MM
    if found.t12 is None and found.t1 is not None:
        found.t12 = found.t1 - 12.0 * TYPICAL_VERTEBRA_MM
    bladder = organ("bladder")
    if bladder is not None:
        found.bladder_bottom = bladder[0]
        found.sources.append("bladder")
    return found


def region_bounds(site: str, landmarks: Landmarks) -> Optional[tuple[float, float]]:
    """(lowest, highest) LPS z of the site's nodal region (module doc), or None without landmarks."""
    if landmarks.t1 is None or landmarks.t12 is None:
        return None
    t1, t12, v = landmarks.t1, landmarks.t12, landmarks.vertebra_mm
    if site == "head-neck":
        return t1 - 4.0 * v, float("inf")
    if site == "thorax":
        return t12 - 1.0 * v, t1 + 1.0 * v
    if site == "abdomen":
        return t12 - 6.0 * v, t12 + 3.0 * v
    if site == "pelvis":
        bottom = (landmarks.bladder_bottom - INGUINAL_BELOW_BLADDER_MM if landmarks.bladder_bottom is not None
                  else t12 - 14.0 * v)
        return bottom, t12 - 4.0 * v
    raise ValueError(site)


def site_of_primary(tumor_on_pet: np.ndarray, suv: sitk.Image, landmarks: Landmarks) -> Optional[str]:
    """The first site (head to feet) whose region holds the primary's centroid; None outside the four regions."""
    from ..anatomy.body import world_points

    index = np.argwhere(tumor_on_pet)
    if not len(index):
        return None
    z = float(world_points(suv, index.mean(axis=0, keepdims=True))[0, 2])
    for site in SITES:
        bounds = region_bounds(site, landmarks)
        if bounds is not None and bounds[0] <= z <= bounds[1]:
            return site
    return None


def set_aside_outside_site(detection: PetDetection, site: str, landmarks: Landmarks) -> Optional[tuple[float, float]]:
    """Mark the node candidates whose centroid lies outside the site's region 'outside_site'; returns the region's
    bounds, or None (nothing marked) when the landmarks do not place it."""
    bounds = region_bounds(site, landmarks)
    if bounds is None:
        return None
    low, high = bounds
    for lesion in detection.candidates:
        z = lesion.centroid_lps[2]
        if not low <= z <= high:
            lesion.where = "outside_site"
            lesion.how = f"centre z {z:.0f} mm outside the {site} nodal region ({_describe(low)} to {_describe(high)})"
    return bounds


def _describe(z: float) -> str:
    return "the scan's end" if not np.isfinite(z) else f"z {z:.0f} mm"
