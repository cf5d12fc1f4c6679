"""SUVbw from DICOM tags, against the IBSI/MIRP oracle, plus midnight, ADMIN, overrides and missing tags."""

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LNStagingLib.errors import DicomError, MissingTagError
from LNStagingLib.io.dicom_series import read_dicom_series
from LNStagingLib.io.suv import pet_to_suv, suv_factor

ORACLE_FACTOR = 2.4290298e-4


@pytest.fixture(scope="module")
def raw_pet(data_dir):
    return read_dicom_series(data_dir / "mirp_sts_raw_pet/STS_001/FDG_PET/image")


@pytest.fixture
def header(data_dir):
    return pydicom.dcmread(data_dir / "mirp_sts_raw_pet/STS_001/FDG_PET/image/1-001.dcm", stop_before_pixels=True)


def test_factor_matches_oracle(raw_pet):
    factor = suv_factor(raw_pet.headers)
    assert factor.factor == pytest.approx(ORACLE_FACTOR, rel=1e-7)
    assert factor.decay_time_s == pytest.approx(2711.0)


def test_suv_image_reproduces_ibsi_suv(raw_pet, data_dir):
    suv, _ = pet_to_suv(raw_pet)
    assert float(sitk.GetArrayViewFromImage(suv).max()) == pytest.approx(66.5, abs=0.05)
    ibsi = read_dicom_series(data_dir / "ibsi_validation_sts/dicom/STS_001/PET/image")
    ibsi_suv, factor = pet_to_suv(ibsi)
    assert factor.units == "GML" and factor.factor == 1.0
    on_grid = sitk.GetArrayFromImage(sitk.Resample(suv, ibsi_suv, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0))
    expected = sitk.GetArrayFromImage(ibsi_suv)
    assert on_grid.max() == pytest.approx(25.4123, abs=1e-3)
    assert expected.max() == pytest.approx(25.4123, abs=1e-3)
    assert np.median(np.abs(on_grid - expected)) < 1e-6


def _with_times(ds, injection, series_date, series_time, injection_datetime=None):
    ds = copy.deepcopy(ds)
    ds.SeriesDate = ds.AcquisitionDate = series_date
    ds.SeriesTime = ds.AcquisitionTime = series_time
    item = ds.RadiopharmaceuticalInformationSequence[0]
    item.RadiopharmaceuticalStartTime = injection
    if injection_datetime:
        item.RadiopharmaceuticalStartDateTime = injection_datetime
    return ds


def test_injection_before_midnight_scan_after(header):
    # 23:50:00 -> 00:35:11 next day is the same 2711 s uptake as the oracle.
    shifted = _with_times(header, "235000", "20000908", "003511")
    assert suv_factor(shifted).factor == pytest.approx(ORACLE_FACTOR, rel=1e-7)
    explicit = _with_times(header, "235000", "20000908", "003511", injection_datetime="20000907235000")
    assert suv_factor(explicit).factor == pytest.approx(ORACLE_FACTOR, rel=1e-7)


def test_earliest_acquisition_time_wins_over_later_series_time(header):
    later_series = copy.deepcopy(header)
    later_series.SeriesTime = "123000"  # series time rewritten after reconstruction
    assert suv_factor(later_series).factor == pytest.approx(ORACLE_FACTOR, rel=1e-7)


def test_admin_decay_correction_uses_no_decay(header):
    ds = copy.deepcopy(header)
    ds.DecayCorrection = "ADMIN"
    assert suv_factor(ds).factor == pytest.approx(71000.0 / 3.88777472e8)


@pytest.mark.parametrize("keyword,in_item,option", [
    ("PatientWeight", False, "--weight-kg"),
    ("RadionuclideTotalDose", True, "--dose-bq"),
    ("RadionuclideHalfLife", True, "--half-life-s"),
    ("RadiopharmaceuticalStartTime", True, "--injection-time"),
])
def test_missing_tag_names_tag_and_option(header, keyword, in_item, option):
    ds = copy.deepcopy(header)
    holder = ds.RadiopharmaceuticalInformationSequence[0] if in_item else ds
    delattr(holder, keyword)
    with pytest.raises(MissingTagError) as error:
        suv_factor(ds)
    assert keyword in str(error.value) and option in str(error.value)


def test_user_values_replace_missing_tags(header):
    ds = copy.deepcopy(header)
    del ds.PatientWeight
    item = ds.RadiopharmaceuticalInformationSequence[0]
    del item.RadionuclideTotalDose
    del item.RadiopharmaceuticalStartTime
    factor = suv_factor(ds, weight_kg=71, dose_bq=3.88777472e8, injection_time="103500")
    assert factor.factor == pytest.approx(ORACLE_FACTOR, rel=1e-7)
    assert set(factor.supplied_by_user) == {"weight", "dose", "injection time"}


def test_implausible_dose_and_units_refused(header):
    with pytest.raises(DicomError, match="MBq"):
        suv_factor(header, dose_bq=388.0)
    counts = copy.deepcopy(header)
    counts.Units = "CNTS"
    with pytest.raises(DicomError, match="CNTS"):
        suv_factor(counts)
