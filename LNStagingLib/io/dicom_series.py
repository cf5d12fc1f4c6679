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
from .slice_geometry import check_orientations, place_slices, sorted_stack

log = logging.getLogger(__name__)

#: Modalities that are not image series (they reference one).
NON_IMAGE_MODALITIES = {"RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG"}


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
    # one line when the slices were resampled onto a regular grid (gantry tilt, irregular spacing): the image's
    # slices are then no longer the files' slices (see io.slice_geometry)
    resampled: str | None = None

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
                  what: str = "image", series_option: str | None = None) -> SeriesInfo:
    """Pick one series by SeriesInstanceUID, else by modality; ambiguity is an error that lists the choices and
    names ``series_option``, the calling command's option for the SeriesInstanceUID (if it has one)."""
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
            f"SeriesInstanceUID{f' ({series_option} UID)' if series_option else ''}, or give a folder holding only "
            f"that series. Found: {listing}."
        )
    return candidates[0]


def _frame_geometry(ds: Dataset) -> tuple[list, list, list] | None:
    """(per-frame orientations, per-frame positions, pixel spacing) of an enhanced or legacy-converted multi-frame
    object from its functional groups; None when it has no per-frame positions (ITK's own geometry is then used)."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    frames = ds.get("PerFrameFunctionalGroupsSequence") or []

    def item(group: Dataset, sequence: str) -> Dataset | None:
        value = group.get(sequence)
        return value[0] if value else None

    positions, orientations, spacing = [], [], None
    for frame in frames:
        plane = item(frame, "PlanePositionSequence")
        if plane is None or "ImagePositionPatient" not in plane:
            return None
        positions.append(plane.ImagePositionPatient)
        found = item(frame, "PlaneOrientationSequence") or item(shared, "PlaneOrientationSequence")
        if found is None or "ImageOrientationPatient" not in found:
            return None
        orientations.append(found.ImageOrientationPatient)
        measures = item(frame, "PixelMeasuresSequence") or item(shared, "PixelMeasuresSequence")
        if measures is not None and spacing is None:
            spacing = measures.get("PixelSpacing")
    if len(positions) < 2 or spacing is None:
        return None
    return orientations, positions, list(spacing)


def _frame_rescale(ds: Dataset, index: int) -> tuple[float, float]:
    """(slope, intercept) of one frame: per-frame, shared, then top-level Rescale tags (PET slopes vary by frame)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = ds.get("SharedFunctionalGroupsSequence") or []
    for group in ([per_frame[index]] if index < len(per_frame) else []) + list(shared[:1]):
        transform = group.get("PixelValueTransformationSequence")
        if transform and "RescaleSlope" in transform[0]:
            return float(transform[0].RescaleSlope), float(transform[0].get("RescaleIntercept", 0.0))
    return float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)


def _multiframe_pixels(path: Path, count: int, what: str, folder) -> np.ndarray:
    """Frames [frame, row, column] in file order, rescaled per frame to real values (float32)."""
    try:
        ds = pydicom.dcmread(path)
        stored = np.asarray(ds.pixel_array, dtype=np.float32).reshape(count, int(ds.Rows), int(ds.Columns))
    except Exception:  # pydicom raises many types for pixel data it cannot decode (no handler, corrupt, ...)
        raise DicomError(f"{what}: the multi-frame DICOM file in '{folder}' cannot be decoded (compressed or corrupt): "
                         f"export it uncompressed or as single-frame slices.") from None
    for index in range(count):
        slope, intercept = _frame_rescale(ds, index)
        stored[index] = stored[index] * slope + intercept
    return stored


def flattened_header(ds: Dataset) -> Dataset:
    """A multi-frame header with the attributes a legacy conversion moved into the shared functional groups
    (UnassignedSharedConvertedAttributesSequence: Units, DecayCorrection, RadiopharmaceuticalInformationSequence...)
    also at the top level, where the SUV conversion and the exporters look for them; top-level values win."""
    flat = Dataset(ds)
    for group in (ds.get("SharedFunctionalGroupsSequence") or [])[:1]:
        for item in (group.get("UnassignedSharedConvertedAttributesSequence") or [])[:1]:
            for element in item:
                if element.tag not in flat:
                    flat.add(element)
    return flat


def _fill_value(modality: str, array: np.ndarray) -> float:
    """Value outside the recorded slices after a resampling: no uptake for PET, the image minimum (air or the
    scanner's padding) otherwise."""
    return 0.0 if modality == "PT" else float(np.min(array))


def _read_multiframe(info: SeriesInfo, header: Dataset, folder, what: str) -> tuple[sitk.Image, str | None]:
    """A single-file multi-frame series with the same slice checks as a series of files (positions from the
    per-frame functional groups), or ITK's reading when the frames carry no positions."""
    geometry = _frame_geometry(header)
    if geometry is None:
        try:
            return sitk.ReadImage(str(info.files[0]), sitk.sitkFloat32), None
        except RuntimeError:
            raise DicomError(f"{what}: the multi-frame DICOM file in '{folder}' cannot be read: convert it to NIfTI "
                             f"or export it as single-frame slices.") from None
    orientations, positions, spacing = geometry
    check_orientations(orientations, folder)
    order, stack = sorted_stack(orientations[0], positions, spacing, folder)
    frames = _multiframe_pixels(info.files[0], len(positions), what, folder)[order]
    return place_slices(None, lambda: frames, stack, _fill_value(info.modality, frames), what)


def _read_slices(info: SeriesInfo, headers: list[Dataset], folder, what: str):
    """A series of single-slice files, sorted along the normal, with every slice at its recorded position."""
    if len(info.files) < 2:
        raise DicomError(f"{what}: the DICOM series in '{folder}' has a single slice: a 3D volume is needed; copy "
                         f"the whole series.")
    check_orientations([ds.get("ImageOrientationPatient") for ds in headers], folder)
    order, stack = sorted_stack(headers[0].get("ImageOrientationPatient"),
                                [ds.get("ImagePositionPatient") for ds in headers],
                                headers[0].get("PixelSpacing"), folder)
    files = [info.files[i] for i in order]
    headers = [headers[i] for i in order]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in files])
    if info.modality == "PT":
        reader.SetOutputPixelType(sitk.sitkFloat32)
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # we report spacing irregularities ourselves
    try:
        image = reader.Execute()
    except RuntimeError as error:
        from .memory import allocation_error

        raise (allocation_error(error, folder, what) or DicomError(
            f"{what}: the DICOM pixel data in '{folder}' cannot be decoded (corrupt file or unsupported compression): "
            "export the series again uncompressed.")) from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)
    array = sitk.GetArrayViewFromImage(image)
    image, note = place_slices(image, lambda: sitk.GetArrayFromImage(image),
                               stack, _fill_value(info.modality, array), what)
    return image, note, files, headers


def read_series(info: SeriesInfo, folder=None, what: str = "image") -> DicomSeries:
    """Read one listed series into a SimpleITK image (float32 for PT so per-slice rescale slopes are kept); a
    tilted or irregular stack is resampled so that every slice stays at its recorded position (io.slice_geometry)."""
    folder = folder or (info.files[0].parent if info.files else "")
    headers = (list(info.headers) if info.headers is not None and len(info.headers) == len(info.files)
               else [pydicom.dcmread(p, stop_before_pixels=True) for p in info.files])
    files = list(info.files)
    if len(files) == 1 and int(headers[0].get("NumberOfFrames", 1) or 1) > 1:
        image, note = _read_multiframe(info, headers[0], folder, what)
        headers = [flattened_header(headers[0])]
        sops = [sop_instance_uid(headers[0])]
    else:
        image, note, files, headers = _read_slices(info, headers, folder, what)
        sops = [sop_instance_uid(ds) for ds in headers]
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
        resampled=note,
    )


def read_dicom_series(path, modality: str | None = None, series_uid: str | None = None,
                      what: str = "image", series_option: str | None = None) -> DicomSeries:
    """Read the chosen image series below a folder, of one given DICOM file, or among a list of files."""
    if isinstance(path, (list, tuple)):
        files = [require_exists(f, what) for f in path]
        if not files:
            raise InputFileError(f"{what}: no DICOM files were given.")
        folder = files[0].parent
        info = choose_series(list_series(folder, files), folder, modality=modality, series_uid=series_uid, what=what,
                             series_option=series_option)
        return read_series(info, folder, what)
    path = require_exists(path, what)
    if path.is_file():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        series_uid = series_uid or series_key(ds, path)
        path = path.parent
    series = list_series(path)
    info = choose_series(series, path, modality=modality, series_uid=series_uid, what=what, series_option=series_option)
    return read_series(info, path, what)
