"""Load a PET/CT pair: CT in HU, PET in SUVbw resampled onto the CT grid, both in LPS world coordinates; or a PET
alone (PET-only staging, ``load_pet_only``): then the PET's own grid is the reference of every result.

Refuses pairs that cannot be fused safely: different FrameOfReferenceUIDs (when both are DICOM) without a
registration, or images that do not overlap in space.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, ImageFormatError, InputFileError
from ..progress import Progress
from .dicom_series import DicomSeries, read_dicom_series
from .ct_values import ct_value_problem
from .images import is_dicom_file, read_image, require_exists
from .resample import isotropic_grid, require_overlap, resample_to_reference
from .suv import SuvFactor, pet_to_suv

log = logging.getLogger(__name__)

#: A PET file given without DICOM tags whose maximum exceeds this is Bq/ml, not SUV (SUVmax of a patient is < ~100).
MAX_PLAUSIBLE_SUV = 500.0


@dataclass
class PetCt:
    """CT (HU, float32) and PET (SUVbw, float32) on one grid, with what is known about their DICOM origin.
    ``ct`` is None for a PET-only run: the PET's own grid is then the reference."""

    ct: sitk.Image | None
    pet_suv: sitk.Image
    suv: SuvFactor | None = None
    ct_series: DicomSeries | None = None
    pet_series: DicomSeries | None = None

    @property
    def reference(self) -> sitk.Image:
        """The grid every result is on: the CT's, or the PET's own when no CT was given."""
        return self.ct if self.ct is not None else self.pet_suv

    @property
    def reference_series(self) -> DicomSeries | None:
        """The DICOM series of the reference grid (an RTSTRUCT's or SEG's frame of reference is checked against it)."""
        return self.ct_series if self.ct is not None else self.pet_series

    @property
    def frame_of_reference_uid(self) -> str | None:
        return self.ct_series.frame_of_reference_uid if self.ct_series else None

    def on_working_grid(self, spacing_mm: float = 1.0) -> "PetCt":
        """Both images on the isotropic working grid of the CT (direction kept); DICOM metadata carried along."""
        grid = isotropic_grid(self.ct, spacing_mm)
        return PetCt(
            ct=resample_to_reference(self.ct, grid, "linear", -1024.0),
            pet_suv=resample_to_reference(self.pet_suv, grid, "linear", 0.0),
            suv=self.suv, ct_series=self.ct_series, pet_series=self.pet_series,
        )


def _is_dicom(path: Path) -> bool:
    return path.is_dir() or is_dicom_file(path)


def _read_registration(registration) -> sitk.Transform | None:
    if registration is None or isinstance(registration, sitk.Transform):
        return registration
    path = require_exists(registration, "registration")
    try:
        return sitk.ReadTransform(str(path))
    except RuntimeError:
        raise InputFileError(f"registration '{path}' is not an ITK transform file (.tfm/.h5/.txt): export the "
                             f"PET-to-CT registration as an ITK transform.") from None


def load_ct(path: os.PathLike | str, series_uid: str | None = None,
            series_option: str = "--ct-series-uid") -> tuple[sitk.Image, DicomSeries | None]:
    path = require_exists(path, "CT")
    if _is_dicom(path):
        series = read_dicom_series(path, modality=None if series_uid else "CT", series_uid=series_uid, what="CT",
                                   series_option=series_option)
        image = sitk.Cast(series.image, sitk.sitkFloat32)
    else:
        image, series = sitk.Cast(read_image(path, what="CT"), sitk.sitkFloat32), None
    problem = ct_value_problem(image, f"CT '{path.name}'")
    if problem:
        raise ImageFormatError(problem)
    return image, series


MAX_LABELS_IN_A_LABEL_MAP = 256  # an integer "PET" with this few values is a label map or a mask


def require_uptake(image: sitk.Image, path) -> None:
    """A PET whose values are all zero or negative, or one value everywhere, holds no uptake: every detector would
    report '0 candidates' for it, which reads as a negative scan."""
    array = sitk.GetArrayViewFromImage(image)
    low, high = float(np.min(array)), float(np.max(array))
    if high <= 0:
        raise ImageFormatError(f"PET '{path}' has no positive uptake (values from {low:.4g} to {high:.4g}): it is "
                               "empty or not a PET; give the reconstructed PET series.")
    if low == high:
        raise ImageFormatError(f"PET '{path}' has the same value ({high:.4g}) in every voxel: it holds no uptake "
                               "image; give the reconstructed PET series.")


def load_pet_suv(path: os.PathLike | str, series_uid: str | None = None, series_option: str = "--pet-series-uid",
                 **suv_overrides):
    """PET in SUVbw: DICOM is converted from its tags; NIfTI/NRRD/MHA is taken as SUV already (checked for Bq/ml).
    ``series_option``: the calling command's option for the PET SeriesInstanceUID (for the messages)."""
    path = require_exists(path, "PET")
    if _is_dicom(path):
        series = read_dicom_series(path, modality=None if series_uid else "PT", series_uid=series_uid, what="PET",
                                   series_option=series_option)
        require_uptake(series.image, path)
        image, factor = pet_to_suv(series, **suv_overrides)
        return image, factor, series
    stored = read_image(path, what="PET")
    require_uptake(stored, path)
    if stored.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        distinct = np.unique(sitk.GetArrayViewFromImage(stored))
        if distinct.size <= MAX_LABELS_IN_A_LABEL_MAP:
            raise ImageFormatError(f"PET '{path}' holds only {distinct.size} distinct whole numbers: it looks like a "
                                   "label map or mask, not a PET; give the PET image.")
    image = sitk.Cast(stored, sitk.sitkFloat32)
    peak = float(np.max(sitk.GetArrayViewFromImage(image)))
    if peak > MAX_PLAUSIBLE_SUV:
        raise ImageFormatError(f"PET '{path}' has values up to {peak:.3g}, which is Bq/ml rather than SUV: give the PET "
                               f"DICOM series (converted from its tags) or convert it with 'lnstaging suv' first.")
    if any(value not in (None, False) for value in suv_overrides.values()):
        log.warning("weight/dose options ignored: a PET file without DICOM tags is taken as SUVbw already")
    log.info("PET from '%s' has no DICOM tags: taken as SUVbw already", path.suffix)
    return image, None, None


def check_pet_ct_pair(ct_image: sitk.Image, ct_series: DicomSeries | None, pet_image: sitk.Image,
                      pet_series: DicomSeries | None, registration_option: str | None = None) -> None:
    """The one input check of every command that fuses a PET and a CT without a registration: the same frame of
    reference (when both are DICOM) and overlapping images. ``registration_option`` is the option that supplies a
    registration on the command at hand (None: the command has none)."""
    ct_for = ct_series.frame_of_reference_uid if ct_series else None
    pet_for = pet_series.frame_of_reference_uid if pet_series else None
    if ct_for and pet_for and ct_for != pet_for:
        remedy = (f"register them first and give the registration ({registration_option})" if registration_option
                  else "give the CT acquired with this PET (same PET/CT session)")
        raise GeometryError(f"PET and CT have different frames of reference (FrameOfReferenceUID): they were not "
                            f"acquired together; {remedy}.")
    require_overlap(pet_image, ct_image)


def load_pet_ct(ct: os.PathLike | str, pet: os.PathLike | str, *, weight_kg: float | None = None,
                dose_bq: float | None = None, injection_time: str | None = None, half_life_s: float | None = None,
                ct_series_uid: str | None = None, pet_series_uid: str | None = None, registration=None,
                progress: Progress | None = None, accept_timing: bool = False,
                pet_series_option: str = "--pet-series-uid", registration_option: str | None = None) -> PetCt:
    """CT and SUVbw PET on the CT grid.

    ``registration``: an ITK transform (object or file) mapping CT points to PET points; with it, PET and CT may
    have different frames of reference. Without it they must share one (when both are DICOM) and overlap.
    ``pet_series_option`` and ``registration_option`` are the calling command's options, named in the messages
    (``registration_option`` None: the command takes no registration).
    """
    progress = progress or Progress()
    progress.step(0.0, "reading CT")
    ct_image, ct_series = load_ct(ct, ct_series_uid)
    progress.step(0.4, "reading PET")
    pet_image, factor, pet_series = load_pet_suv(pet, pet_series_uid, pet_series_option, weight_kg=weight_kg,
                                                 dose_bq=dose_bq,
                                                 injection_time=injection_time, half_life_s=half_life_s,
                                                 accept_timing=accept_timing)
    transform = _read_registration(registration)
    if transform is None:
        check_pet_ct_pair(ct_image, ct_series, pet_image, pet_series, registration_option)
    progress.step(0.8, "resampling PET onto the CT grid")
    pet_on_ct = resample_to_reference(pet_image, ct_image, "linear", 0.0, transform=transform)
    if transform is not None and not np.any(sitk.GetArrayViewFromImage(pet_on_ct)):
        raise GeometryError("after the registration the PET does not overlap the CT: check the registration direction "
                            "(it must map CT points to PET points).")
    progress.step(1.0, "PET/CT loaded")
    return PetCt(ct=ct_image, pet_suv=pet_on_ct, suv=factor, ct_series=ct_series, pet_series=pet_series)


def load_pet_only(pet: os.PathLike | str, *, weight_kg: float | None = None, dose_bq: float | None = None,
                  injection_time: str | None = None, half_life_s: float | None = None,
                  pet_series_uid: str | None = None, progress: Progress | None = None,
                  accept_timing: bool = False) -> PetCt:
    """A PET without a CT (PET-only staging): SUVbw on the PET's own grid, which becomes the reference."""
    progress = progress or Progress()
    progress.step(0.0, "reading PET")
    pet_image, factor, pet_series = load_pet_suv(pet, pet_series_uid, weight_kg=weight_kg, dose_bq=dose_bq,
                                                 injection_time=injection_time, half_life_s=half_life_s,
                                                 accept_timing=accept_timing)
    progress.step(1.0, "PET loaded")
    return PetCt(ct=None, pet_suv=pet_image, suv=factor, pet_series=pet_series)
