"""Node candidates from a PET alone (or PET/CT): detect, set aside physiological uptake and the primary, measure.

The one entry point the ``lnstaging candidates`` command and the pipeline share. The candidate file it writes is the
format ``lnstaging run --candidates`` reads (x, y, z in LPS mm, radius_mm) plus the measurements.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from .. import NOT_FOR_CLINICAL_USE
from ..errors import InputFileError
from .pet_lesions import DEFAULT_SUV_THRESHOLD, PetDetection, detect_pet_lesions, measure_on_ct
from .physiological import (physiological_masks, set_aside_bladder_heuristic, set_aside_kidney_heart_heuristic,
                            set_aside_organs, set_aside_primary)

CSV_FIELDS = ("id", "x", "y", "z", "radius_mm", "suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "background_suv",
              "short_axis_mm", "long_axis_mm", "mean_hu", "peak_x", "peak_y", "peak_z")


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
                   threshold: Optional[float] = DEFAULT_SUV_THRESHOLD) -> PetDetection:
    """Detect PET-avid lesions on ``suv`` (the PET's own grid) and sort them into candidates, primary and
    physiological uptake. With ``ct`` the lesions are also measured on the CT (axes, HU)."""
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
        organs = set_aside_kidney_heart_heuristic(detection, suv)
        detection.notes.append(f"No organ masks: bladder, kidneys and heart recognised from uptake, size and position "
                               f"(lesions set aside: bladder {len(found)}, kidney {len(organs['kidney'])}, heart "
                               f"{len(organs['heart'])}; see set_aside in the JSON file).")
    if tumor is not None:
        set_aside_primary(detection, tumor, suv)
    if ct is not None:
        measure_on_ct(detection, ct)
    return detection


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
    return lines + detection.notes


def write_candidate_file(detection: PetDetection, path: Path) -> None:
    """CSV (candidates only, one row each) or JSON (candidates, primary, set-aside lesions) by the suffix; rows sorted
    by SUVpeak, highest first."""
    from ..io.atomic import atomic_file

    path = Path(path)
    candidates = sorted(detection.candidates, key=lambda lesion: -lesion.suv_peak)
    with atomic_file(path) as tmp:
        if path.suffix.lower() == ".json":
            document = {"disclaimer": NOT_FOR_CLINICAL_USE, "ranking": "SUVpeak (not a learned probability)",
                        "threshold": detection.threshold, "threshold_rule": detection.threshold_rule,
                        "candidates": [_row(lesion) for lesion in candidates],
                        "primary": [_row(lesion) for lesion in detection.primary],
                        "set_aside": [dict(_row(lesion), where=lesion.where, how=lesion.how)
                                      for lesion in detection.lesions if lesion.where not in ("candidate", "primary")],
                        "notes": detection.notes}
            Path(tmp).write_text(json.dumps(document, indent=1))
        elif path.suffix.lower() == ".csv":
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, CSV_FIELDS)
                writer.writeheader()
                writer.writerows(_row(lesion) for lesion in candidates)
        else:
            raise InputFileError(f"--out {path.name}: give a .csv or .json file name.")
