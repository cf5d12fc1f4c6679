"""Required attributes of the RT Structure Set IOD (DICOM PS3.3 A.19), checked with pydicom.

Lists the Type 1 (present, non-empty) and Type 2 (present, may be empty) attributes of the mandatory modules:
Patient, General Study, RT Series, Frame of Reference, General Equipment, Structure Set, ROI Contour, RT ROI Observations and
SOP Common, including those inside sequence items. Type 3 sequences we always write (Referenced Frame of
Reference, Contour Image) are checked as if required, because planning systems need them to place contours.
The exporter refuses to write a dataset this check rejects; tests also run it on written files.
"""

from __future__ import annotations

import pydicom

# (keyword, type, children) where children apply to every item of a sequence.
CONTOUR_IMAGE = (("ReferencedSOPClassUID", 1, ()), ("ReferencedSOPInstanceUID", 1, ()))
RTSTRUCT_MODULES: dict[str, tuple] = {
    "Patient": (("PatientName", 2, ()), ("PatientID", 2, ()), ("PatientBirthDate", 2, ()), ("PatientSex", 2, ())),
    "General Study": (("StudyInstanceUID", 1, ()), ("StudyDate", 2, ()), ("StudyTime", 2, ()),
                      ("ReferringPhysicianName", 2, ()), ("StudyID", 2, ()), ("AccessionNumber", 2, ())),
    "RT Series": (("Modality", 1, ()), ("SeriesInstanceUID", 1, ()), ("SeriesNumber", 2, ()), ("OperatorsName", 2, ())),
    "Frame of Reference": (("FrameOfReferenceUID", 1, ()), ("PositionReferenceIndicator", 2, ())),
    "General Equipment": (("Manufacturer", 2, ()),),
    "Structure Set": (
        ("StructureSetLabel", 1, ()), ("StructureSetDate", 2, ()), ("StructureSetTime", 2, ()),
        ("ReferencedFrameOfReferenceSequence", 1, (
            ("FrameOfReferenceUID", 1, ()),
            ("RTReferencedStudySequence", 1, (
                ("ReferencedSOPClassUID", 1, ()), ("ReferencedSOPInstanceUID", 1, ()),
                ("RTReferencedSeriesSequence", 1, (
                    ("SeriesInstanceUID", 1, ()), ("ContourImageSequence", 1, CONTOUR_IMAGE))))))),
        ("StructureSetROISequence", 1, (
            ("ROINumber", 1, ()), ("ReferencedFrameOfReferenceUID", 1, ()), ("ROIName", 2, ()),
            ("ROIGenerationAlgorithm", 2, ()))),
    ),
    "ROI Contour": (
        ("ROIContourSequence", 1, (
            ("ReferencedROINumber", 1, ()), ("ROIDisplayColor", 1, ()),
            ("ContourSequence", 1, (
                ("ContourImageSequence", 1, CONTOUR_IMAGE), ("ContourGeometricType", 1, ()),
                ("NumberOfContourPoints", 1, ()), ("ContourData", 1, ()))))),),
    "RT ROI Observations": (
        ("RTROIObservationsSequence", 1, (
            ("ObservationNumber", 1, ()), ("ReferencedROINumber", 1, ()), ("RTROIInterpretedType", 2, ()),
            ("ROIInterpreter", 2, ()))),),
    "SOP Common": (("SOPClassUID", 1, ()), ("SOPInstanceUID", 1, ())),
}


def _check(ds: pydicom.Dataset, spec: tuple, where: str, problems: list[str]) -> None:
    for keyword, kind, children in spec:
        path = f"{where} > {keyword}"
        if keyword not in ds:
            problems.append(f"{path} (Type {kind}) is missing")
            continue
        value = ds[keyword].value
        empty = value is None or value == "" or (hasattr(value, "__len__") and len(value) == 0)
        if kind == 1 and empty:
            problems.append(f"{path} (Type 1) is empty")
        if children and not empty:
            for i, item in enumerate(value):
                _check(item, children, f"{path}[{i}]", problems)


def missing_rtstruct_attributes(ds: pydicom.Dataset) -> list[str]:
    """Every required attribute that is absent or (Type 1) empty, plus broken internal references; [] when valid."""
    problems: list[str] = []
    for module, spec in RTSTRUCT_MODULES.items():
        _check(ds, spec, module, problems)
    if problems:
        return problems
    if ds.Modality != "RTSTRUCT":
        problems.append(f"RT Series > Modality is {ds.Modality!r}, not 'RTSTRUCT'")
    roi_numbers = {int(item.ROINumber) for item in ds.StructureSetROISequence}
    for name in ("ROIContourSequence", "RTROIObservationsSequence"):
        for item in ds[name].value:
            if int(item.ReferencedROINumber) not in roi_numbers:
                problems.append(f"{name} refers to ROI {item.ReferencedROINumber}, which the Structure Set does not define")
    referenced_images = {
        image.ReferencedSOPInstanceUID
        for frame in ds.ReferencedFrameOfReferenceSequence for study in frame.RTReferencedStudySequence
        for series in study.RTReferencedSeriesSequence for image in series.ContourImageSequence}
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            if len(contour.ContourData) != 3 * int(contour.NumberOfContourPoints):
                problems.append(f"ROI {roi.ReferencedROINumber}: Contour Data does not hold 3 x Number of Contour Points values")
            for image in contour.ContourImageSequence:
                if image.ReferencedSOPInstanceUID not in referenced_images:
                    problems.append(f"ROI {roi.ReferencedROINumber}: a contour refers to an image outside the referenced series")
    return problems
