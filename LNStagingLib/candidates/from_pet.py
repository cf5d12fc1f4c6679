"""Node candidates from a PET alone (or PET/CT): detect, set aside physiological uptake, the primary, large lesions
and what lies outside the site's nodal region, measure.

The one entry point the ``lnstaging candidates`` command and the pipeline share. The candidate file it writes is the
node list, in the format ``lnstaging run --candidates`` reads (x, y, z in LPS mm, radius_mm) plus the measurements;
everything else goes to its sibling other_findings.csv (and the JSON's ``other_findings``) with a ``reason``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from .. import NOT_FOR_CLINICAL_USE
from ..errors import InputFileError
from .large_lesions import set_apart_large_lesions
from .pet_lesions import DEFAULT_SUV_THRESHOLD, PetDetection, detect_pet_lesions, measure_on_ct
from .physiological import (physiological_masks, set_aside_bladder_heuristic, set_aside_kidney_heart_heuristic,
                            set_aside_organs, set_aside_primary)

CSV_FIELDS = ("id", "x", "y", "z", "radius_mm", "suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "background_suv",
              "short_axis_mm", "long_axis_mm", "mean_hu", "peak_x", "peak_y", "peak_z")
OTHER_FINDINGS_FIELDS = CSV_FIELDS + ("reason", "how")
OTHER_FINDINGS_NAME = "other_findings.csv"
REASONS = ("large_lesion", "outside_site", "physiological", "primary")


def parse_threshold(text: str | float | None) -> Optional[float]:
    """'2.5' -> 2.5 (absolute SUVpeak); 'liver' -> None (PERCIST liver-referenced)."""
    if text is None:
        return DEFAULT_SUV_THRESHOLD
    if str(text).strip().lower() == "liver":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputFileError(f"--threshold {text!r} is neither an SUV (e.g. 2.5) nor 'liver'.") from None
    if not value > 0:
        raise InputFileError(f"--threshold {value:g} must be a positive SUV (e.g. 2.5).")
    return value


def pet_candidates(suv: sitk.Image, *, ct: Optional[sitk.Image] = None, organs: Optional[Path] = None,
                   organ_mapping: Optional[str] = None, tumor: Optional[sitk.Image] = None,
                   threshold: Optional[float] = DEFAULT_SUV_THRESHOLD, site: Optional[str] = None) -> PetDetection:
    """Detect PET-avid lesions on ``suv`` (the PET's own grid) and sort them into node candidates, primary,
    physiological uptake, large lesions and (with ``site``, or a ``tumor`` that places one) lesions outside the
    site's nodal region. With ``ct`` the lesions are also measured on the CT (axes, HU); its lungs, and the organ
    masks' vertebrae, place the region."""
    masks = physiological_masks(organs, suv, organ_mapping) if organs is not None else {}
    if threshold is None and "liver" not in masks:
        raise InputFileError("--threshold liver (PERCIST) needs a liver mask among the organ masks (--organs); "
                             "give them or use --threshold 2.5.")
    liver = None
    if threshold is None:
        liver = sitk.GetImageFromArray(masks["liver"].astype("uint8"))
        liver.CopyInformation(suv)
    detection = detect_pet_lesions(suv, threshold=threshold, liver=liver)
    if masks:
        set_aside_organs(detection, masks, suv)
        detection.notes.append("Physiological uptake set aside with the organ masks: "
                               + (", ".join(sorted(masks)) or "none found"))
    else:
        found = set_aside_bladder_heuristic(detection, suv)
        kidney_heart = set_aside_kidney_heart_heuristic(detection, suv)
        detection.notes.append(f"No organ masks: bladder, kidneys and heart recognised from uptake, size and position "
                               f"(lesions set aside: bladder {len(found)}, kidney {len(kidney_heart['kidney'])}, "
                               f"heart {len(kidney_heart['heart'])}; see set_aside in the JSON file).")
    if tumor is not None:
        set_aside_primary(detection, tumor, suv)
    large = set_apart_large_lesions(detection, suv)
    if large:
        detection.notes.append(f"Large lesions (likely primary or physiological), each listed once in other findings: "
                               f"{len(large)} (" + "; ".join(f"{lesion.mtv_ml:.0f} ml, SUVmax {lesion.suv_max:.1f}"
                                                            for lesion in large) + ").")
    if site is not None or tumor is not None:
        _order_by_site(detection, suv, masks, ct, site, tumor, organs, organ_mapping)
    if ct is not None:
        measure_on_ct(detection, ct)
    return detection


def _order_by_site(detection: PetDetection, suv: sitk.Image, masks: dict, ct: Optional[sitk.Image],
                   site: Optional[str], tumor: Optional[sitk.Image], organs=None, organ_mapping=None) -> None:
    """The node list keeps the candidates inside the site's nodal region (given, or inferred from the primary)."""
    from .site_region import find_landmarks, nodal_site, set_aside_outside_site, site_of_primary

    landmarks = find_landmarks(detection, suv, masks, ct, organs, organ_mapping)
    chosen = nodal_site(site)
    if site is not None and chosen is None:
        detection.notes.append(f"Site {site!r} is none of the nodal regions (head-neck, thorax, abdomen, pelvis): "
                               "the node list holds every candidate.")
        return
    if chosen is None:
        from ..io.resample import resample_to_reference

        on_pet = resample_to_reference(tumor, suv, "nearest", 0)
        chosen = site_of_primary(sitk.GetArrayViewFromImage(on_pet) > 0, suv, landmarks)
        if chosen is None:
            detection.notes.append("The primary lies in none of the nodal regions the landmarks place (or none is "
                                   "placed): give --site; the node list holds every candidate.")
            return
        detection.notes.append(f"Site {chosen} inferred from the primary's position.")
    bounds = set_aside_outside_site(detection, chosen, landmarks)
    if bounds is None:
        seen = f" ({'; '.join(landmarks.sources)})" if landmarks.sources else ""
        detection.notes.append(f"Site {chosen}: no landmark places its nodal region (shoulders, kidneys, heart on the "
                               f"PET; lungs on the CT; vertebrae in the organ masks){seen}: the node list holds every "
                               "candidate.")
        return
    outside = sum(lesion.where == "outside_site" for lesion in detection.lesions)
    low, high = (f"z {b:.0f} mm" if abs(b) != float("inf") else "the scan's end" for b in bounds)
    detection.notes.append(f"Site {chosen}: nodal region {low} to {high} (from {', '.join(landmarks.sources)}); "
                           f"{outside} candidate(s) outside it listed in other findings.")


def _row(lesion) -> dict:
    row = {"id": lesion.id, "x": lesion.centroid_lps[0], "y": lesion.centroid_lps[1], "z": lesion.centroid_lps[2],
           "radius_mm": lesion.radius_mm, "peak_x": lesion.peak_lps[0], "peak_y": lesion.peak_lps[1],
           "peak_z": lesion.peak_lps[2]}
    for name in CSV_FIELDS:
        if name not in row:
            row[name] = getattr(lesion, name)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def summary_lines(detection: PetDetection) -> list[str]:
    """What a user reads on the console: counts, the threshold rule, what was set aside and why."""
    lines = [f"{len(detection.candidates)} PET candidates (threshold: {detection.threshold_rule}; ranked by SUVpeak, "
             "not by a learned probability)."]
    if not detection.candidates:
        lines[0] = (f"No focus above the threshold ({detection.threshold_rule}) outside the primary and physiological "
                    "uptake: the candidate list is empty.")
    if detection.primary:
        lines.append(f"Primary tumour: {len(detection.primary)} lesion(s) inside the --tumor mask, reported apart.")
    excluded = detection.excluded_by_organ()
    if excluded:
        lines.append("Physiological uptake set aside: " + ", ".join(f"{k} {v}" for k, v in sorted(excluded.items())))
    others = detection.other_findings
    if others:
        lines.append(f"Other findings (not in the node list): {len(others)} ("
                     + ", ".join(f"{k} {v}" for k, v in count_reasons(others).items()) + ").")
    return lines + detection.notes


def count_reasons(lesions) -> dict[str, int]:
    """Lesions per reason (large_lesion, outside_site, physiological, primary), the reasons present only."""
    counts = {reason: sum(lesion.reason == reason for lesion in lesions) for reason in REASONS}
    return {reason: n for reason, n in counts.items() if n}


def other_findings_path(candidate_file: Path) -> Path:
    """Where the other findings go: ``other_findings.csv`` beside the candidate file."""
    return Path(candidate_file).with_name(OTHER_FINDINGS_NAME)


def other_finding_rows(detection: PetDetection) -> list[dict]:
    """Other findings, grouped by reason (large lesions first), each group by SUVpeak, highest first."""
    others = sorted(detection.other_findings, key=lambda lesion: (REASONS.index(lesion.reason), -lesion.suv_peak))
    return [dict(_row(lesion), reason=lesion.reason, how=lesion.how) for lesion in others]


def write_candidate_file(detection: PetDetection, path: Path) -> None:
    """CSV (the node list, one row each) or JSON (node list, other findings with their reason, and the earlier
    ``primary`` and ``set_aside`` keys) by the suffix, rows sorted by SUVpeak, highest first; other_findings.csv
    beside it."""
    from ..io.atomic import atomic_file

    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise InputFileError(f"--out {path.name}: give a .csv or .json file name.")
    candidates = sorted(detection.candidates, key=lambda lesion: -lesion.suv_peak)
    write_other_findings(detection, other_findings_path(path))
    with atomic_file(path) as tmp:
        if path.suffix.lower() == ".json":
            document = {"disclaimer": NOT_FOR_CLINICAL_USE, "ranking": "SUVpeak (not a learned probability)",
                        "threshold": detection.threshold, "threshold_rule": detection.threshold_rule,
                        "candidates": [_row(lesion) for lesion in candidates],
                        "primary": [_row(lesion) for lesion in detection.primary],
                        "set_aside": [dict(_row(lesion), where=lesion.where, how=lesion.how)
                                      for lesion in detection.lesions if lesion.reason == "physiological"],
                        "other_findings": other_finding_rows(detection),
                        "notes": detection.notes}
            Path(tmp).write_text(json.dumps(document, indent=1))
        elif path.suffix.lower() == ".csv":
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, CSV_FIELDS)
                writer.writeheader()
                writer.writerows(_row(lesion) for lesion in candidates)


def write_other_findings(detection: PetDetection, path: Path) -> None:
    """other_findings.csv: every lesion not in the node list, with its ``reason`` (large_lesion, outside_site,
    physiological, primary) and ``how`` (the rule's figures); the header only when there is none."""
    from ..io.atomic import atomic_file

    with atomic_file(Path(path)) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, OTHER_FINDINGS_FIELDS)
            writer.writeheader()
            writer.writerows(other_finding_rows(detection))
