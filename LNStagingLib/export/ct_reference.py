"""The CT series an export refers to: its geometry, UIDs per slice, and the header to copy identifiers from.

The exporters need the planning CT exactly as the planning system sees it: one series, slices in order along
the slice normal, the SOP Instance UID of each slice, and the patient/study identifiers. When the shared DICOM
reader (LNStagingLib.io.dicom_series) is available it is used; otherwise a minimal header-only reader here
does the same job (no pixel data is needed to place contours).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from ..errors import DicomError, InputFileError

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMAGE_SOP_CLASSES = {
    CT_IMAGE_STORAGE: "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.128": "PET",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
}


@dataclass
class CtReference:
    """What an RTSTRUCT/SEG must reference. ``image`` is a geometry-only SimpleITK image of the series."""

    image: sitk.Image
    frame_of_reference_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_instance_uids: list[str]
    sop_class_uid: str
    files: list[Path]
    header: pydicom.Dataset  # the first slice, without pixel data: patient/study identifiers come from here
    modality: str = "CT"
    extra: dict = field(default_factory=dict)


def _image_series(folder: Path) -> dict[str, list[tuple[Path, pydicom.Dataset]]]:
    series: dict[str, list[tuple[Path, pydicom.Dataset]]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM: ignore, as every DICOM importer does
            continue
        if str(ds.get("SOPClassUID", "")) in IMAGE_SOP_CLASSES and "ImagePositionPatient" in ds:
            series.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))
    return series


def _describe(uid: str, items: list[tuple[Path, pydicom.Dataset]]) -> str:
    ds = items[0][1]
    return f"{ds.get('Modality', '?')} series {ds.get('SeriesNumber', '?')} '{ds.get('SeriesDescription', '')}' ({len(items)} slices, UID {uid})"


def read_ct_reference(folder: Path | str) -> CtReference:
    """Read the one image series in ``folder`` (headers only) and sort its slices along the slice normal."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"CT DICOM folder {folder} does not exist: give the folder holding the planning CT slices.")
    series = _image_series(folder)
    if not series:
        raise InputFileError(f"No DICOM image slices found in {folder}: give the folder holding the planning CT series.")
    if len(series) > 1:
        listing = "; ".join(_describe(uid, items) for uid, items in series.items())
        raise InputFileError(f"{folder} holds {len(series)} image series ({listing}): put only the planning CT series in the folder.")
    uid, items = next(iter(series.items()))
    first = items[0][1]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    for path, ds in items:
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], iop, atol=1e-4):
            raise DicomError(f"Slices of series {uid} do not share one orientation: export needs a regular CT volume.")
        for tag in ("Rows", "Columns", "PixelSpacing", "FrameOfReferenceUID"):
            if tag not in ds:
                raise DicomError(f"CT slice {path.name} has no {tag}: the CT series is incomplete.")
    items.sort(key=lambda item: float(np.dot(normal, [float(v) for v in item[1].ImagePositionPatient])))
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
    if len({str(ds.SOPInstanceUID) for _, ds in items}) != len(items):
        raise DicomError(f"Series {uid} holds duplicate SOP Instance UIDs: remove the duplicated slices.")
    if len(items) > 1:
        steps = np.diff(positions @ normal)
        if np.any(steps <= 1e-3) or np.ptp(steps) > 1e-2 * max(abs(float(np.mean(steps))), 1e-3) + 1e-3:
            raise DicomError(f"Series {uid} has duplicate or unevenly spaced slices: export needs a regular CT volume.")
        slice_spacing = float(np.mean(steps))
    else:
        slice_spacing = float(first.get("SliceThickness", 1.0) or 1.0)
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)  # DICOM: (between rows, between columns)
    image = sitk.Image(int(first.Columns), int(first.Rows), len(items), sitk.sitkUInt8)
    image.SetOrigin(tuple(positions[0]))
    image.SetSpacing((col_spacing, row_spacing, slice_spacing))
    image.SetDirection(tuple(np.column_stack([row_dir, col_dir, normal]).ravel()))
    return CtReference(
        image=image,
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        series_instance_uid=uid,
        study_instance_uid=str(first.StudyInstanceUID),
        sop_instance_uids=[str(ds.SOPInstanceUID) for _, ds in items],
        sop_class_uid=str(first.SOPClassUID),
        files=[path for path, _ in items],
        header=items[0][1],
        modality=str(first.get("Modality", "CT")),
    )
