"""Is this CT in Hounsfield units? Catches the two mistakes that otherwise run silently to a wrong result:
stored pixel values without the DICOM rescale (air at ~0 instead of -1000, every HU threshold off by 1024), and a
non-CT volume given as the CT (a PET, a mask, a normalised image). A strided sample keeps this under 0.1 s."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

UNRESCALED_MEDIAN_HU = 500.0  # a body CT's median is air or soft tissue (< 100 HU); +1024 puts it above 900
MIN_HU_RANGE_MAX = 200.0  # any CT holds soft tissue above this or air below -200 HU


def ct_value_problem(ct: sitk.Image, name: str = "CT") -> str | None:
    """One sentence saying what is wrong with the CT's values and what to do, or None when they look like HU."""
    array = sitk.GetArrayViewFromImage(ct)
    step = max(1, int(round((array.size / 2_000_000) ** (1 / 3))))
    sample = np.asarray(array[::step, ::step, ::step], dtype=np.float32)
    if sample.size == 0:
        return None
    low, median, high = float(sample.min()), float(np.median(sample)), float(sample.max())
    if low >= 0 and median >= UNRESCALED_MEDIAN_HU:
        return (f"{name} values run from {low:.0f} to {high:.0f} (median {median:.0f}): these are stored pixel values, "
                "not Hounsfield units (air must be near -1000 HU); apply RescaleSlope/RescaleIntercept (usually "
                "subtract 1024) or give the CT DICOM series.")
    if low >= -10 and high < MIN_HU_RANGE_MAX:
        return (f"{name} values run only from {low:.3g} to {high:.3g}: this is not a CT in Hounsfield units (a PET, "
                "a mask or a normalised image?); give the CT, and check that CT and PET were not swapped.")
    return None
