"""PET activity (Bq/ml) to body-weight SUV from the DICOM tags, the vendor-neutral way (QIBA SUV recipe).

SUVbw = activity * weight_g / (injected dose decayed to the scan start). Units GML means the PET is already SUVbw
and passes through with factor 1. A missing tag is a MissingTagError naming the tag and the CLI option that
supplies it; implausible values are refused rather than turned into a silently wrong SUV.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from dataclasses import dataclass

import SimpleITK as sitk
from pydicom.dataset import Dataset

from ..errors import DicomError, MissingTagError

log = logging.getLogger(__name__)

ONE_DAY = dt.timedelta(days=1)
UPTAKE_RANGE_S = (10 * 60, 5 * 3600)  # plausible injection-to-scan time (FDG protocols: about 60 min)
ACCEPTED_UPTAKE_MAX_S = 24 * 3600  # with --accept-timing: anything from injection up to a day
HALF_LIFE_RANGE_S = (60.0, 1e7)  # O-15 (122 s) to I-124 (4.2 days); F-18 is 6586.2 s


@dataclass(frozen=True)
class SuvFactor:
    """The multiplicative factor (g/ml per Bq/ml) and the values it came from, for provenance."""

    factor: float
    units: str
    weight_kg: float | None = None
    dose_bq: float | None = None
    half_life_s: float | None = None
    decay_time_s: float | None = None
    decay_correction: str | None = None
    supplied_by_user: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.units == "GML":
            return "PET is already SUVbw (Units GML): factor 1"
        text = (f"SUVbw factor {self.factor:.8g} g/Bq (weight {self.weight_kg:g} kg, dose {self.dose_bq:.6g} Bq, "
                f"half-life {self.half_life_s:g} s, decay {self.decay_time_s:.0f} s, correction {self.decay_correction})")
        if self.supplied_by_user:
            text += f"; given on the command line: {', '.join(self.supplied_by_user)}"
        return text


def _missing(tag: str, keyword: str, option: str, what: str) -> MissingTagError:
    return MissingTagError(f"PET DICOM tag {keyword} {tag} ({what}) is missing or empty: give the value with {option}.")


def _float_tag(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def parse_dicom_datetime(date: str | None, time: str | None) -> dt.datetime | None:
    """DA + TM (or a DT split at 8) to a naive datetime; fractional seconds kept; None when absent."""
    if not time:
        return None
    time = str(time).strip().replace(":", "")
    try:
        hours, minutes = int(time[0:2]), int(time[2:4] or 0)
        seconds = float(time[4:] or 0) if len(time) > 4 else 0.0
        day = dt.datetime.strptime(str(date).strip()[:8], "%Y%m%d") if date else dt.datetime(1900, 1, 1)
    except ValueError:
        raise DicomError(f"PET DICOM date/time '{date} {time}' is malformed (not YYYYMMDD HHMMSS): fix the tags or "
                         "give the injection time with --injection-time HHMMSS.") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 61):
        raise DicomError(f"PET DICOM time '{time}' is not a time of day: fix the tags or give --injection-time HHMMSS.")
    return day + dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _parse_dt(value) -> dt.datetime | None:
    value = str(value or "").strip()
    if len(value) < 10:
        return None
    value = value.split("+")[0].split("-")[0] if len(value) > 14 else value  # drop a UTC offset
    return parse_dicom_datetime(value[:8], value[8:])


def _day_of(ds: Dataset, *keywords: str) -> str | None:
    """The first non-empty date tag among ``keywords``."""
    for keyword in keywords:
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return value
    return None


def _series_time(ds: Dataset) -> tuple[dt.datetime | None, bool]:
    """SeriesTime on SeriesDate (True: the date is the series' own), else on StudyDate / AcquisitionDate."""
    own = _day_of(ds, "SeriesDate")
    return parse_dicom_datetime(own or _day_of(ds, "StudyDate", "AcquisitionDate"), ds.get("SeriesTime")), bool(own)


def _acquisition_time(ds: Dataset) -> tuple[dt.datetime | None, bool]:
    """AcquisitionDateTime, else AcquisitionTime on AcquisitionDate (both the slice's own), else on SeriesDate /
    StudyDate (False: a date borrowed from the series, wrong for a slice acquired after midnight)."""
    combined = _parse_dt(ds.get("AcquisitionDateTime"))
    if combined is not None:
        return combined, True
    own = _day_of(ds, "AcquisitionDate")
    return parse_dicom_datetime(own or _day_of(ds, "SeriesDate", "StudyDate"), ds.get("AcquisitionTime")), bool(own)


def _after_midnight(time: dt.datetime, own_date: bool, injection: dt.datetime | None) -> dt.datetime:
    """A scan time on a borrowed date that falls before the injection belongs to the next day when that gives a
    plausible uptake (injection in the evening, acquisition after midnight, the dates of the series' start)."""
    if injection is None or own_date or time >= injection:
        return time
    later = time + ONE_DAY
    return later if (later - injection).total_seconds() <= UPTAKE_RANGE_S[1] else time


def scan_start(headers: list[Dataset], injection: dt.datetime | None = None) -> dt.datetime:
    """Scan start: SeriesDate/SeriesTime, unless a slice was acquired earlier (vendors that rewrite the series
    time after reconstruction); then the earliest acquisition time (QIBA vendor-neutral rule). Dates come from
    AcquisitionDateTime, AcquisitionDate, SeriesDate, StudyDate in that order; with the ``injection`` known, a time
    on a borrowed date before the injection is moved past midnight (see _after_midnight)."""
    first = headers[0]
    series, own = _series_time(first)
    series = None if series is None else _after_midnight(series, own, injection)
    acquisitions = [_after_midnight(time, own_date, injection)
                    for time, own_date in map(_acquisition_time, headers) if time is not None]
    earliest = min(acquisitions) if acquisitions else None
    if series is None and earliest is None:
        raise MissingTagError("PET DICOM tags SeriesTime (0008,0031) and AcquisitionTime (0008,0032) are both missing: "
                              "the scan time is unknown; give the injection time with --injection-time and check the series.")
    if series is None or (earliest is not None and earliest < series):
        return earliest
    return series


def injection_start(first: Dataset, day: dt.datetime, injection_time: str | None = None) -> tuple[dt.datetime, bool]:
    """Injection time and whether its date is known: RadiopharmaceuticalStartDateTime (True), else the user's
    HHMMSS or RadiopharmaceuticalStartTime on ``day`` (False: the study's date; see suv_factor for midnight)."""
    info = first.get("RadiopharmaceuticalInformationSequence")
    item = info[0] if info else Dataset()
    if injection_time:
        if not re.fullmatch(r"([01]\d|2[0-3])([0-5]\d)([0-5]\d(\.\d+)?)?", str(injection_time).strip().replace(":", "")):
            raise DicomError(f"--injection-time {injection_time!r} is not a time of day HHMMSS (e.g. 103500 for "
                             "10:35:00).")
        return parse_dicom_datetime(day.strftime("%Y%m%d"), injection_time), False
    start = _parse_dt(item.get("RadiopharmaceuticalStartDateTime"))
    if start is not None:
        return start, True
    start = parse_dicom_datetime(day.strftime("%Y%m%d"), item.get("RadiopharmaceuticalStartTime"))
    if start is None:
        raise _missing("(0018,1072)", "RadiopharmaceuticalStartTime", "--injection-time HHMMSS", "injection time")
    return start, False


def uptake_times(headers: list[Dataset], injection_time: str | None = None) -> tuple[dt.datetime, dt.datetime]:
    """(scan start, injection) ordered across midnight. The injection time without a date is put on the series'
    date; scan times on a borrowed date before it move to the next day (evening injection, scan after midnight);
    an injection then after the scan moves to the day before when that gives a plausible uptake (series dated
    after midnight). Otherwise an injection after the scan stays so, and check_uptake refuses it."""
    first = headers[0]
    day = parse_dicom_datetime(_day_of(first, "SeriesDate", "StudyDate", "AcquisitionDate"), "000000")
    injection, known_date = injection_start(first, day, injection_time)
    scan = scan_start(headers, injection)
    if not known_date and injection > scan and (scan - (injection - ONE_DAY)).total_seconds() <= UPTAKE_RANGE_S[1]:
        injection -= ONE_DAY
    return scan, injection


def check_uptake(scan: dt.datetime, start: dt.datetime, accept_timing: bool = False) -> float:
    """Seconds from injection to scan start; refused when the injection is after the scan, and outside 10 min to
    5 h unless the user confirms the timing (--accept-timing): a wrong time gives a wrong SUV, silently."""
    seconds = (scan - start).total_seconds()
    if seconds < 0:
        raise DicomError(f"the injection ({start:%H:%M:%S}) is after the scan start ({scan:%H:%M:%S}): check the "
                         "injection time (give it with --injection-time HHMMSS).")
    low, high = (0.0, ACCEPTED_UPTAKE_MAX_S) if accept_timing else UPTAKE_RANGE_S
    if not low <= seconds <= high:
        # --accept-timing helps only up to a day: an uptake of days is a wrong date, not an unusual protocol
        confirmable = not accept_timing and seconds <= ACCEPTED_UPTAKE_MAX_S
        hint = ", or confirm an unusual protocol with --accept-timing" if confirmable else ""
        if seconds > ACCEPTED_UPTAKE_MAX_S:
            hint = f" and the dates (an uptake of {seconds / 86400:.1f} days)"
        raise DicomError(f"time from injection to scan is {seconds / 60:.0f} min, outside the plausible "
                         f"{low / 60:.0f} min to {high / 3600:.0f} h: check the injection time (--injection-time "
                         f"HHMMSS){hint}.")
    return seconds


def suv_factor(headers: list[Dataset] | Dataset, *, weight_kg: float | None = None, dose_bq: float | None = None,
               injection_time: str | None = None, half_life_s: float | None = None,
               accept_timing: bool = False) -> SuvFactor:
    """The SUVbw factor for a PET series from its headers (slice order irrelevant); user values override tags.

    ``accept_timing``: the user confirms an uptake time outside 10 min to 5 h (never an injection after the scan)."""
    headers = [headers] if isinstance(headers, Dataset) else list(headers)
    first = headers[0]
    units = str(first.get("Units", "") or "").upper()
    if units == "GML":
        return SuvFactor(1.0, "GML")
    if not units:
        raise MissingTagError("PET DICOM tag Units (0054,1001) is missing: it is unknown whether the PET is Bq/ml or "
                              "SUV; export the PET again with its Units tag.")
    if units != "BQML":
        raise DicomError(f"PET Units are {units}, not Bq/ml (BQML) or SUV (GML): convert the PET to Bq/ml in the "
                         f"scanner software first.")
    decay_correction = str(first.get("DecayCorrection", "") or "").upper()
    if decay_correction not in ("START", "ADMIN"):
        raise DicomError(f"PET DecayCorrection is '{decay_correction or 'missing'}', not START or ADMIN: this program "
                         f"cannot compute SUV for it; reconstruct with decay correction to scan start.")
    info = first.get("RadiopharmaceuticalInformationSequence")
    item = info[0] if info else Dataset()
    supplied: list[str] = []

    def value(user: float | None, holder: Dataset, keyword: str, tag: str, option: str, what: str) -> float:
        if user is not None:
            supplied.append(what)
            user = float(user)
            if not math.isfinite(user) or user <= 0:
                raise DicomError(f"{option.split()[0]} {user:g} is not a positive number: give the {what}.")
            return user
        found = _float_tag(holder, keyword)
        if found is None:
            raise _missing(tag, keyword, option, what)
        return found

    weight_kg = value(weight_kg, first, "PatientWeight", "(0010,1030)", "--weight-kg", "weight")
    if not 1.0 <= weight_kg <= 500.0:
        raise DicomError(f"patient weight {weight_kg:g} kg is implausible: give the weight in kilograms with --weight-kg.")
    dose_bq = value(dose_bq, item, "RadionuclideTotalDose", "(0018,1074)", "--dose-bq", "dose")
    if not 1e6 <= dose_bq <= 1e11:
        raise DicomError(f"injected dose {dose_bq:g} Bq is implausible (MBq given as Bq?): give the dose in becquerel, "
                         f"e.g. --dose-bq 3.7e8.")
    half_life_s = value(half_life_s, item, "RadionuclideHalfLife", "(0018,1075)", "--half-life-s (6586.2 for F-18)",
                        "half-life")
    if not HALF_LIFE_RANGE_S[0] <= half_life_s <= HALF_LIFE_RANGE_S[1]:
        raise DicomError(f"half-life {half_life_s:g} s is implausible (minutes or hours given as seconds?): give it in "
                         "seconds, e.g. --half-life-s 6586.2 for F-18.")
    if decay_correction == "ADMIN":
        decay_time_s = 0.0
    else:
        scan, injection = uptake_times(headers, injection_time)
        if injection_time:
            supplied.append("injection time")
        decay_time_s = check_uptake(scan, injection, accept_timing)
    decayed_dose = dose_bq * 2.0 ** (-decay_time_s / half_life_s)
    factor = weight_kg * 1000.0 / decayed_dose
    return SuvFactor(factor, units, weight_kg, dose_bq, half_life_s, decay_time_s, decay_correction, tuple(supplied))


def pet_to_suv(series, **overrides) -> tuple[sitk.Image, SuvFactor]:
    """SUVbw image (float32) of a read PET DicomSeries, and the factor used."""
    if series.modality != "PT":
        raise DicomError(f"the series given as PET has modality {series.modality}: give the PET (PT) series.")
    factor = suv_factor(series.headers, **overrides)
    image = sitk.Cast(series.image, sitk.sitkFloat32)
    if factor.factor != 1.0:
        image = image * factor.factor
    log.info("%s", factor.describe())
    return image, factor
