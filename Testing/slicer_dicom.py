"""A DICOM series loaded into a slicer-core scene the way Slicer's DICOM module loads it, for tests.

slicer-core has no ctkDICOMDatabase and no DICOM plugins (DICOMLib is application only). What they leave in the
scene is reproduced here, as read in Slicer's source at v5.10.0 and v5.12.3:
- DICOMScalarVolumePlugin.load: the volume read from the series' files (here SimpleITK's series reader, LPS
  converted to RAS by the scene adapter), node attribute ``DICOM.instanceUIDs`` = the files' SOP Instance UIDs in
  slice (k) order;
- DICOMPlugin.addSeriesInSubjectHierarchy: a series item with UID ``DICOM`` = SeriesInstanceUID, UID
  ``DICOMInstanceUID`` = the instance UIDs, attributes ``DICOM.Modality``, ``DICOM.FrameOfReferenceUID``, ...; the
  patient and study items made by ``vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy`` (the same
  C++ call) with their ``DICOM.Patient*`` / ``DICOM.Study*`` attributes;
- the DICOM database is ``DicomIndex``: SOP Instance UID -> file, the one ctkDICOMDatabase method the module uses
  (``fileForInstance``), built by reading the files' headers with pydicom.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import SimpleITK as sitk

import slicer

from LNStagingLib.scene import volumes


class DicomIndex:
    """ctkDICOMDatabase.fileForInstance over the files of some folders ('' for an unknown instance, as ctk)."""

    def __init__(self, *folders: Path):
        self.files: dict[str, str] = {}
        for folder in folders:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    try:
                        ds = pydicom.dcmread(path, stop_before_pixels=True)
                    except Exception:
                        continue
                    self.files[str(ds.SOPInstanceUID)] = str(path)

    def fileForInstance(self, uid: str) -> str:
        return self.files.get(uid, "")


def load_like_dicom_module(scene, folder: Path, name: str):
    """Load the one image series in ``folder`` into ``scene`` as Slicer's DICOM module would; returns the node."""
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))  # sorted along the slice normal, as the plugin sorts
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    reader.SetFileNames(files)
    if headers[0].Modality == "PT":
        reader.SetOutputPixelType(sitk.sitkFloat32)  # per-slice rescale slopes kept, in Bq/ml as Slicer shows it
    image = reader.Execute()
    node = volumes.add_volume(scene, image, name)
    instances = " ".join(str(ds.SOPInstanceUID) for ds in headers)
    node.SetAttribute("DICOM.instanceUIDs", instances)
    first = headers[0]
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    item = hierarchy.GetItemByDataNode(node)
    if item == hierarchy.GetInvalidItemID():
        item = hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)
    hierarchy.SetItemUID(item, constants.GetDICOMUIDName(), str(first.SeriesInstanceUID))
    hierarchy.SetItemUID(item, constants.GetDICOMInstanceUIDName(), instances)
    for attribute, keyword in ((constants.GetDICOMSeriesModalityAttributeName(), "Modality"),
                               (constants.GetDICOMFrameOfReferenceUIDAttributeName(), "FrameOfReferenceUID"),
                               ("DICOM.SeriesDescription", "SeriesDescription")):
        hierarchy.SetItemAttribute(item, attribute, str(first.get(keyword, "")))
    study_uid = str(first.StudyInstanceUID)
    patient_id = str(first.get("PatientID", "")) or "Patient-" + study_uid  # the DICOM module's stand-in for ''
    slicer.vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy(
        hierarchy, patient_id, study_uid, str(first.SeriesInstanceUID))
    patient = hierarchy.GetItemByUID(constants.GetDICOMUIDName(), patient_id)
    study = hierarchy.GetItemByUID(constants.GetDICOMUIDName(), study_uid)
    hierarchy.SetItemAttribute(patient, constants.GetDICOMPatientNameAttributeName(), str(first.PatientName))
    hierarchy.SetItemAttribute(patient, constants.GetDICOMPatientIDAttributeName(), patient_id)
    hierarchy.SetItemAttribute(study, "DICOM.StudyInstanceUID", study_uid)
    hierarchy.SetItemAttribute(study, constants.GetDICOMStudyIDAttributeName(), str(first.get("StudyID", "")))
    return node
