"""The CT series an export refers to, read with the shared DICOM reader and checked for what export needs.

The planning system matches our objects to its CT by UIDs only: the series, study and frame-of-reference UIDs
and one SOP Instance UID per slice. A series lacking any of them (over-anonymised) or stored as one multi-frame
object cannot be referenced slice by slice, so it is refused here, before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom

from ..errors import ExportError, InputFileError
from ..io.dicom_series import NON_IMAGE_MODALITIES, DicomSeries, read_dicom_series


def read_ct_reference(folder, series_uid: str | None = None) -> DicomSeries:
    """The one image series in ``folder`` (or the one with ``series_uid``), slices in order along the normal.
    ``folder`` may also be a list of the series' files (what Slicer's DICOM database knows of a loaded CT)."""
    if not isinstance(folder, (list, tuple)) and Path(folder).is_file():
        try:
            modality = str(pydicom.dcmread(folder, stop_before_pixels=True).get("Modality", "")).upper()
        except Exception:
            modality = ""
        if modality in NON_IMAGE_MODALITIES:
            raise InputFileError(f"'{folder}' is an {modality}, not a CT image: give the folder holding the CT series.")
    ct = read_dicom_series(folder, series_uid=series_uid, what="CT", series_option="--series-uid")
    if isinstance(folder, (list, tuple)):
        folder = f"{len(folder)} DICOM files of the loaded CT, first {folder[0]}"
    missing = [name for name, value in (("SeriesInstanceUID", ct.series_instance_uid),
                                        ("StudyInstanceUID", ct.study_instance_uid),
                                        ("FrameOfReferenceUID", ct.frame_of_reference_uid)) if not value]
    if missing or not all(ct.sop_instance_uids):
        missing += [] if all(ct.sop_instance_uids) else ["SOPInstanceUID"]
        raise ExportError(f"The CT series in '{folder}' has no {', '.join(missing)}: a structure set cannot reference it. "
                          "Export the CT again from the scanner or PACS without removing UIDs.")
    if ct.resampled:
        raise ExportError(f"The CT in '{folder}' is tilted or irregularly spaced ({ct.resampled}): contours on the "
                          "regular grid cannot reference its slices; reconstruct the CT without gantry tilt at a "
                          "constant slice spacing, then export.")
    if len(ct.sop_instance_uids) != ct.image.GetSize()[2]:
        raise ExportError(f"The CT in '{folder}' is a multi-frame object: export needs the CT as single-slice files.")
    return ct


def sop_class_uid(ct: DicomSeries) -> str:
    return str(ct.first_dataset.SOPClassUID)
