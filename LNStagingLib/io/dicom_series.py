"""Find the image series in a DICOM folder, pick one, and read it with its identifying UIDs.

Headers are read with pydicom (stop_before_pixels); pixels with SimpleITK/GDCM, which also decodes JPEG-2000.
Slices are ordered by their position along the slice normal, and the SOPInstanceUIDs are returned in that
order so that exporters (RTSTRUCT, SEG) can reference each slice. Nothing here logs patient identifiers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from ..errors import DicomError, InputFileError
from .images import check_volume, require_exists

log = logging.getLogger(__name__)

#: Modalities that are not image series (they reference one).
NON_IMAGE_MODALITIES = {"RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG"}
#: Relative deviation of a slice gap from the median that we accept with a warning; beyond it a slice is missing.
SLICE_GAP_TOLERANCE = 0.1


@dataclass(frozen=True)
class SeriesInfo:
    """One image series found in a folder (headers only). ``key`` is the SeriesInstanceUID when the files have one."""

    key: str
    series_instance_uid: str | None
    modality: str
    description: str
    frame_of_reference_uid: str | None
    files: tuple[Path, ...]
    # the headers scan_folder read (same order as ``files``), so read_series does not parse every file a second time
    headers: tuple[Dataset, ...] | None = field(default=None, repr=False, compare=False)

    def summary(self) -> str:
        return f"{self.modality} '{self.description}' ({len(self.files)} files, SeriesInstanceUID {self.series_instance_uid})"


@dataclass
class DicomSeries:
    """A read image series with the metadata exporters and the SUV conversion need."""

    image: sitk.Image
    modality: str
    series_instance_uid: str | None  # None when the files carry none (anonymised)
    study_instance_uid: str | None
    frame_of_reference_uid: str | None
    sop_instance_uids: list[str]  # one per slice, in slice (k index) order
    files: list[Path]  # same order
    headers: list[Dataset] = field(repr=False)  # same order, no pixel data

    @property
    def first_dataset(self) -> Dataset:
        return self.headers[0]


def _iter_files(folder: Path):
    for root, _dirs, names in os.walk(folder):
        for name in sorted(names):
            yield Path(root) / name


def series_key(ds: Dataset, path: Path) -> str:
    """SeriesInstanceUID, or for anonymised files without one a stand-in from modality, number, description and folder."""
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    if uid:
        return uid
    return f"no-uid:{ds.get('Modality', '')}|{ds.get('SeriesNumber', '')}|{ds.get('SeriesDescription', '')}|{path.parent}"


def sop_instance_uid(ds: Dataset) -> str:
    """SOPInstanceUID, falling back to the file meta copy (some anonymisers blank the main one)."""
    uid = str(ds.get("SOPInstanceUID", "") or "")
    if not uid and hasattr(ds, "file_meta"):
        uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or "")
    return uid


def scan_folder(folder: os.PathLike | str) -> dict[str, list[tuple[Path, Dataset]]]:
    """Headers of every DICOM file below ``folder``, grouped by SeriesInstanceUID (non-DICOM files skipped)."""
    return scan_files(_iter_files(Path(folder)))


def scan_files(paths) -> dict[str, list[tuple[Path, Dataset]]]:
    """Headers of the given DICOM files, grouped by SeriesInstanceUID (non-DICOM files skipped). Slicer's DICOM
    database gives a loaded series as a list of files that need not share a folder."""
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for path in map(Path, paths):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "Modality" not in ds and "SOPClassUID" not in ds:
            continue
        groups.setdefault(series_key(ds, path), []).append((path, ds))
    return groups


def _is_image_series(headers: list[Dataset]) -> bool:
    """Image objects have a position (single-frame) or several frames; RTSTRUCT, SEG etc. are not image series."""
    ds = headers[0]
    if str(ds.get("Modality", "")).upper() in NON_IMAGE_MODALITIES:
        return False
    return "ImagePositionPatient" in ds or "NumberOfFrames" in ds


def list_series(folder: os.PathLike | str, files=None) -> list[SeriesInfo]:
    """All image series below ``folder``, or among ``files`` when given (RTSTRUCT, SEG and other non-image objects
    are left out)."""
    found = []
    for uid, items in (scan_folder(folder) if files is None else scan_files(files)).items():
        headers = [ds for _, ds in items]
        if not _is_image_series(headers):
            continue
        first = headers[0]
        found.append(
            SeriesInfo(
                key=uid,
                series_instance_uid=str(first.get("SeriesInstanceUID", "") or "") or None,
                modality=str(first.get("Modality", "")).upper(),
                description=str(first.get("SeriesDescription", "")),
                frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")) or None,
                files=tuple(path for path, _ in items),
                headers=tuple(headers),
            )
        )
    return sorted(found, key=lambda s: (s.modality, s.key))


def _normalise_modality(modality: str | None) -> str | None:
    if modality is None:
        return None
    modality = modality.upper()
    return "PT" if modality == "PET" else modality


def choose_series(series: list[SeriesInfo], folder, modality: str | None = None, series_uid: str | None = None,
                  what: str = "image") -> SeriesInfo:
    """Pick one series by SeriesInstanceUID, else by modality; ambiguity is an error that lists the choices."""
    listing = "; ".join(s.summary() for s in series)
    if not series:
        raise InputFileError(f"{what} folder '{folder}' holds no DICOM image series: check the folder (it is empty or "
                             f"holds only non-image files).")
    if series_uid:
        chosen = [s for s in series if series_uid in (s.key, s.series_instance_uid)]
        if not chosen:
            raise DicomError(f"{what} folder '{folder}' has no series with SeriesInstanceUID {series_uid}; it holds: {listing}.")
        return chosen[0]
    modality = _normalise_modality(modality)
    candidates = [s for s in series if modality is None or s.modality == modality]
    if not candidates:
        raise DicomError(f"{what} folder '{folder}' has no {modality} series; it holds: {listing}. Give the right folder.")
    if len(candidates) > 1:
        raise DicomError(
            f"{what} folder '{folder}' holds {len(candidates)} {modality or 'image'} series: choose one with its "
            f"SeriesInstanceUID (--ct-series / --pet-series / --series-uid). Found: {listing}."
        )
    return candidates[0]


def _slice_order(headers: list[Dataset], folder) -> tuple[np.ndarray, np.ndarray]:
    """Indices sorting the slices along the slice normal, and their positions along it (mm)."""
    try:
        orientation = np.array([float(v) for v in headers[0].ImageOrientationPatient])
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
    except (AttributeError, TypeError, ValueError):
        raise DicomError(f"DICOM series in '{folder}' lacks ImagePositionPatient/ImageOrientationPatient: "
                         f"it is not a 3D image series; export the volume again from the scanner or PACS.") from None
    normal = np.cross(orientation[:3], orientation[3:])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    return order, along[order]


def _check_spacing(along: np.ndarray, folder) -> None:
    gaps = np.diff(along)
    if np.any(np.abs(gaps) < 1e-3):
        raise DicomError(f"DICOM series in '{folder}' has two slices at the same position (several acquisitions or "
                         f"time frames mixed in one series): give one acquisition only.")
    median = float(np.median(gaps))
    worst = float(np.max(np.abs(gaps - median)))
    if worst > SLICE_GAP_TOLERANCE * median:
        k = int(np.argmax(np.abs(gaps - median)))
        raise DicomError(f"DICOM series in '{folder}' has an uneven slice gap after slice {k} ({gaps[k]:.2f} mm vs "
                         f"{median:.2f} mm): a slice file is probably missing; copy the whole series again.")
    if worst > 1e-3 * median:
        log.warning("slice spacing varies by up to %.3f mm (median %.3f mm); using the median", worst, median)


def read_series(info: SeriesInfo, folder=None, what: str = "image") -> DicomSeries:
    """Read one listed series into a SimpleITK image (float32 for PT so per-slice rescale slopes are kept)."""
    folder = folder or (info.files[0].parent if info.files else "")
    headers = (list(info.headers) if info.headers is not None and len(info.headers) == len(info.files)
               else [pydicom.dcmread(p, stop_before_pixels=True) for p in info.files])
    files = list(info.files)
    if len(files) == 1 and int(headers[0].get("NumberOfFrames", 1) or 1) > 1:
        try:
            image = sitk.ReadImage(str(files[0]), sitk.sitkFloat32)
        except RuntimeError:
            raise DicomError(f"{what}: the multi-frame DICOM file in '{folder}' cannot be read: convert it to NIfTI "
                             f"or export it as single-frame slices.") from None
        sops = [sop_instance_uid(headers[0])]
    else:
        if len(files) < 2:
            raise DicomError(f"{what}: the DICOM series in '{folder}' has a single slice: a 3D volume is needed; copy "
                             f"the whole series.")
        order, along = _slice_order(headers, folder)
        _check_spacing(along, folder)
        files = [files[i] for i in order]
        headers = [headers[i] for i in order]
        sops = [sop_instance_uid(ds) for ds in headers]
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(p) for p in files])
        if info.modality == "PT":
            reader.SetOutputPixelType(sitk.sitkFloat32)
        warn = sitk.ProcessObject.GetGlobalWarningDisplay()
        sitk.ProcessObject.SetGlobalWarningDisplay(False)  # we report spacing irregularities ourselves
        try:
            image = reader.Execute()
        except RuntimeError:
            raise DicomError(f"{what}: the DICOM pixel data in '{folder}' cannot be decoded (corrupt file or "
                             f"unsupported compression): export the series again uncompressed.") from None
        finally:
            sitk.ProcessObject.SetGlobalWarningDisplay(warn)
    image = check_volume(image, folder, what)
    first = headers[0]
    return DicomSeries(
        image=image,
        modality=info.modality,
        series_instance_uid=info.series_instance_uid,
        study_instance_uid=str(first.get("StudyInstanceUID", "")) or None,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")) or None,
        sop_instance_uids=sops,
        files=files,
        headers=headers,
    )


def read_dicom_series(path, modality: str | None = None, series_uid: str | None = None,
                      what: str = "image") -> DicomSeries:
    """Read the chosen image series below a folder, of one given DICOM file, or among a list of files."""
    if isinstance(path, (list, tuple)):
        files = [require_exists(f, what) for f in path]
        if not files:
            raise InputFileError(f"{what}: no DICOM files were given.")
        folder = files[0].parent
        info = choose_series(list_series(folder, files), folder, modality=modality, series_uid=series_uid, what=what)
        return read_series(info, folder, what)
    path = require_exists(path, what)
    if path.is_file():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        series_uid = series_uid or series_key(ds, path)
        path = path.parent
    series = list_series(path)
    info = choose_series(series, path, modality=modality, series_uid=series_uid, what=what)
    return read_series(info, path, what)
