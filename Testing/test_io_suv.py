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


RAW_PET = "mirp_sts_raw_pet/STS_001/FDG_PET/image"


def _across_midnight(folder, target, series_time="234500", injection="230000", start_datetime=None):
    """The real raw STS PET as acquired across midnight: SeriesDate the evening before, AcquisitionDate empty,
    AcquisitionTime after 00:00 (the slices' own times moved by the same offset), injection in the evening."""
    import datetime as dt

    target.mkdir()
    shift = None
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        series = dt.datetime.strptime(ds.SeriesDate + ds.SeriesTime.split(".")[0], "%Y%m%d%H%M%S")
        acquired = dt.datetime.strptime(ds.AcquisitionDate + ds.AcquisitionTime.split(".")[0], "%Y%m%d%H%M%S")
        new_series = dt.datetime.strptime(ds.SeriesDate + series_time, "%Y%m%d%H%M%S")
        shift = new_series - series
        ds.SeriesTime = series_time
        ds.AcquisitionDate = ""
        ds.AcquisitionTime = (acquired + shift + dt.timedelta(minutes=16)).strftime("%H%M%S")  # 00:01 and later
        item = ds.RadiopharmaceuticalInformationSequence[0]
        item.RadiopharmaceuticalStartTime = injection
        if start_datetime:
            item.RadiopharmaceuticalStartDateTime = start_datetime
        ds.save_as(target / path.name)
    return target


@pytest.mark.parametrize("start_datetime", [None, "20000907230000"])
def test_pet_acquired_across_midnight(data_dir, tmp_path, start_datetime):
    """Issue 25 item 4: injection 23:00, series start 23:45 on the evening's date, acquisitions after midnight with
    an empty AcquisitionDate: the uptake is 45 min (2700 s), not the 3660 s of an acquisition dated the evening."""
    import hashlib

    source = data_dir / RAW_PET
    before = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(source.iterdir()))).hexdigest()
    folder = _across_midnight(source, tmp_path / "pet", start_datetime=start_datetime)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())]
    assert min(ds.AcquisitionTime for ds in headers) < "001000" and headers[0].SeriesDate == "20000907"
    factor = suv_factor(headers)
    assert factor.decay_time_s == pytest.approx(2700.0)
    expected = 71.0 * 1000.0 / (3.88777472e8 * 2.0 ** (-2700.0 / 6588.0))
    assert factor.factor == pytest.approx(expected, rel=1e-9)
    assert suv_factor(headers, injection_time="230000").decay_time_s == pytest.approx(2700.0)  # the option agrees
    assert hashlib.sha256(b"".join(p.read_bytes() for p in sorted(source.iterdir()))).hexdigest() == before


def test_injection_after_the_scan_is_not_moved_to_the_next_day(header):
    """A series with its own date and an injection given after it stays refused (no 23.5 h uptake made up)."""
    ds = copy.deepcopy(header)
    del ds.AcquisitionDate
    with pytest.raises(DicomError, match="is after the scan start"):
        suv_factor(ds, injection_time="115000", accept_timing=True)
