"""What every DICOM object we create shares: identity of the software, the disclaimer, dates, UIDs."""

from __future__ import annotations

import datetime

import pydicom
from pydicom.uid import generate_uid

from .. import NOT_FOR_CLINICAL_USE, __version__

MANUFACTURER = "LNStaging"
MODEL_NAME = "LNStagingLib"
SOFTWARE_VERSION = f"LNStagingLib {__version__}"
DISCLAIMER = f"LNStaging lymph node GTV. {NOT_FOR_CLINICAL_USE}"
SERIES_DESCRIPTION = "LNStaging GTVn, research only: NOT FOR CLINICAL USE"  # LO: at most 64 characters

# Patient and General Study module attributes copied verbatim from the CT (Type 2 ones are created empty if absent).
PATIENT_STUDY_TAGS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
    "PatientIdentityRemoved", "DeidentificationMethod", "IssuerOfPatientID",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "StudyDescription",
)
TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                       "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def now() -> tuple[str, str]:
    t = datetime.datetime.now()
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S")


def new_uid() -> str:
    return generate_uid()


def save_file(ds: pydicom.Dataset, path) -> None:
    """Write ``ds`` as a DICOM file with its preamble and file meta. pydicom 3 names this switch
    ``enforce_file_format``; pydicom 2.4 (what Slicer 5.10 ships) names it ``write_like_original=False``."""
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:
        syntax = ds.file_meta.TransferSyntaxUID  # pydicom 2 encodes by these two flags, not by the file meta
        ds.is_little_endian, ds.is_implicit_VR = syntax.is_little_endian, syntax.is_implicit_VR
        ds.save_as(path, write_like_original=False)


def part10_meta(ds: pydicom.Dataset) -> "pydicom.dataset.FileMetaDataset":
    """The file meta information of a dataset written as explicit-VR little-endian Part-10 file."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def copy_patient_study(source: pydicom.Dataset, target: pydicom.Dataset) -> None:
    """Copy the patient and study identifiers so that the new object files under the CT's patient and study."""
    for keyword in PATIENT_STUDY_TAGS:
        if keyword in source:
            target[keyword] = source[keyword]
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in target:
            setattr(target, keyword, "")
    if "SpecificCharacterSet" in source:
        target.SpecificCharacterSet = source.SpecificCharacterSet
