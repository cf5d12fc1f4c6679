"""Which DICOM series a volume node was loaded from, as Slicer's DICOM module records it, and that series' files.

Slicer's DICOM module (DICOMLib/DICOMPlugin.py ``addSeriesInSubjectHierarchy`` and DICOMScalarVolumePlugin.py, read
at v5.10.0 and v5.12.3) puts on the volume's subject hierarchy item the series' SeriesInstanceUID (item UID
``DICOM``), its SOP Instance UIDs (item UID ``DICOMInstanceUID``, space-separated, one per loaded file) and the
attribute ``DICOM.FrameOfReferenceUID``; the volume node itself gets ``DICOM.instanceUIDs``. The files are found
through the DICOM database (``slicer.dicomDatabase.fileForInstance``). An RTSTRUCT written against those files
attaches to the planning CT the user loaded: same Series, SOP Instance and Frame of Reference UIDs.

The database is passed in (``slicer.dicomDatabase`` inside Slicer), so a test can hand in an equivalent lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import slicer

from ..errors import ExportError

SERIES_UID_NAME = "DICOM"  # vtkMRMLSubjectHierarchyConstants::GetDICOMUIDName()
INSTANCE_UIDS_NAME = "DICOMInstanceUID"  # vtkMRMLSubjectHierarchyConstants::GetDICOMInstanceUIDName()
FRAME_OF_REFERENCE_ATTRIBUTE = "DICOM.FrameOfReferenceUID"
NODE_INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # DICOMScalarVolumePlugin, on the volume node
UNKNOWN_UID = "Unknown"  # what the DICOM module writes for a file without SOPInstanceUID


@dataclass(frozen=True)
class DicomOrigin:
    """The series a volume came from: UIDs as the subject hierarchy holds them."""

    series_instance_uid: str
    instance_uids: tuple[str, ...]
    frame_of_reference_uid: str


def dicom_origin(scene, node) -> DicomOrigin | None:
    """The DICOM series ``node`` was loaded from, or None when it did not come through the DICOM module."""
    if node is None:
        return None
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = hierarchy.GetItemByDataNode(node)
    if item == slicer.vtkMRMLSubjectHierarchyNode.GetInvalidItemID():
        return None
    series = hierarchy.GetItemUID(item, SERIES_UID_NAME) or ""
    instances = (hierarchy.GetItemUID(item, INSTANCE_UIDS_NAME) or node.GetAttribute(NODE_INSTANCE_UIDS_ATTRIBUTE)
                 or "").split()
    if not series or not instances:
        return None
    return DicomOrigin(series, tuple(instances), hierarchy.GetItemAttribute(item, FRAME_OF_REFERENCE_ATTRIBUTE) or "")


def series_files(origin: DicomOrigin, database, what: str = "CT") -> list[str]:
    """The files of the series' instances, from the DICOM database; refused when one is not there any more.
    ``what`` names the series in the refusals (the planning CT, or the PET of a PET-only review)."""
    if database is None:
        raise ExportError("Slicer's DICOM database is not open: open the DICOM module once, then export again.")
    if UNKNOWN_UID in origin.instance_uids:
        raise ExportError(f"The {what}'s DICOM files have no SOP Instance UID: an RTSTRUCT or SEG cannot reference "
                          f"them. Export the {what} again from the scanner or PACS without removing UIDs.")
    files = [database.fileForInstance(uid) for uid in origin.instance_uids]
    missing = sum(1 for f in files if not f)
    if missing:
        raise ExportError(f"{missing} of the {what}'s {len(files)} DICOM files are no longer in Slicer's DICOM "
                          f"database: import the {what} series into the DICOM database again, then export.")
    return files
