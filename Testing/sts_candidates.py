"""A candidate list for the real IBSI STS_001 PET/CT that the browser tests review.

Since issue 28 the weight-free detector lists STS_001's sarcoma once, as a large lesion, and its node list holds one
candidate: too few to test a review (accept, reject, pending, neighbours on one slice, a list that fills the page).
A candidate file from "another detector" is a supported input (`run --candidates FILE`): here it is every SUVpeak
maximum the PET detector finds before any rule sets lesions apart (the over-split list it gave before issue 28), the
hottest first, each at least MIN_DISTANCE_MM from those kept, as node-sized spheres (10 mm short axis): the review
works on real anatomy and real uptake, ranked by SUVpeak, and every node can be seen apart from its neighbours."""

from __future__ import annotations

import csv
from pathlib import Path

import SimpleITK as sitk

RADIUS_MM = 5.0  # a 10 mm short axis: the usual size threshold of a suspicious node
MIN_DISTANCE_MM = 16.0  # 6 mm between two spheres' surfaces
STS_PET_NIFTI = Path(__file__).parent / "Data" / "ibsi_validation_sts" / "nifti" / "STS_001" / "PET_image.nii.gz"


def write_sts_candidate_file(path: Path, pet: Path = STS_PET_NIFTI) -> Path:
    """x, y, z (LPS mm, the lesion's SUVpeak centre) and radius_mm per kept maximum; returns ``path``."""
    import numpy as np

    from LNStagingLib.candidates.pet_lesions import detect_pet_lesions

    detection = detect_pet_lesions(sitk.ReadImage(str(pet), sitk.sitkFloat32))
    kept: list[tuple[float, float, float]] = []
    for lesion in sorted(detection.lesions, key=lambda lesion: -lesion.suv_peak):
        if all(np.linalg.norm(np.subtract(lesion.peak_lps, other)) >= MIN_DISTANCE_MM for other in kept):
            kept.append(tuple(lesion.peak_lps))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x", "y", "z", "radius_mm"])
        writer.writerows([f"{v:.2f}" for v in point] + [f"{RADIUS_MM:.1f}"] for point in kept)
    return path
