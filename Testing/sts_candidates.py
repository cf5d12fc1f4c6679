"""A candidate list for the real IBSI STS_001 PET/CT that the browser tests review.

Since issue 28 the weight-free detector lists STS_001's sarcoma once, as a large lesion, and its node list holds one
candidate: too few to test a review (accept, reject, pending, neighbours on one slice, a list that fills the page).
A candidate file from "another detector" is a supported input (`run --candidates FILE`): here it is every SUVpeak
maximum the PET detector finds before any rule sets lesions apart (the over-split list it gave before issue 28), as
spheres of the lesions' equivalent radius, so the review works on real anatomy and real uptake, ranked by SUVpeak."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import SimpleITK as sitk

STS_PET_NIFTI = Path(__file__).parent / "Data" / "ibsi_validation_sts" / "nifti" / "STS_001" / "PET_image.nii.gz"


def write_sts_candidate_file(path: Path, pet: Path = STS_PET_NIFTI) -> Path:
    """x, y, z (LPS mm, the lesion's SUVpeak centre) and radius_mm (3-8 mm) per detected maximum; returns ``path``."""
    from LNStagingLib.candidates.pet_lesions import detect_pet_lesions

    detection = detect_pet_lesions(sitk.ReadImage(str(pet), sitk.sitkFloat32))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x", "y", "z", "radius_mm"])
        for lesion in detection.lesions:
            radius = min(8.0, max(3.0, (3 * lesion.mtv_ml * 1000 / (4 * math.pi)) ** (1 / 3)))
            writer.writerow([f"{v:.2f}" for v in lesion.peak_lps] + [f"{radius:.1f}"])
    return path
