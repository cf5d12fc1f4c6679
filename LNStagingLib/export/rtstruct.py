"""DICOM RT Structure Set writer (pydicom): one ROI per node, CLOSED_PLANAR contours on every CT slice crossed.

Written with pydicom directly rather than rt-utils because we need per-ROI interpreted type, generation
algorithm, probability-coded colours, exact hole handling and a geometry that respects any CT orientation.
The result is checked by ``iod_check.missing_rtstruct_attributes`` before it is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.sequence import Sequence

from ..errors import ExportError
from ..io.atomic import atomic_file
from ..progress import Progress
from .contours import mask_contours
from ..io.dicom_series import DicomSeries
from .ct_reference import sop_class_uid
from .dicom_common import (DISCLAIMER, MANUFACTURER, MODEL_NAME, SERIES_DESCRIPTION, SOFTWARE_VERSION,
                           copy_patient_study, new_uid, now, part10_meta, save_file)
from .iod_check import missing_rtstruct_attributes
from .review_rule import fit_words
from .rois import RoiSpec, roi_boxes, roi_mask

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
# Conventional Referenced SOP Class UID for a study reference in RT Referenced Study Sequence (retired
# Detached Study Management SOP Class), what planning systems write and expect.
STUDY_REFERENCE_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"


def _ds_number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _image_reference(ct: DicomSeries, k: int) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = sop_class_uid(ct)
    item.ReferencedSOPInstanceUID = ct.sop_instance_uids[k]
    return item


def _referenced_frame_of_reference(ct: DicomSeries) -> Sequence:
    series = pydicom.Dataset()
    series.SeriesInstanceUID = ct.series_instance_uid
    series.ContourImageSequence = Sequence([_image_reference(ct, k) for k in range(len(ct.sop_instance_uids))])
    study = pydicom.Dataset()
    study.ReferencedSOPClassUID = STUDY_REFERENCE_SOP_CLASS
    study.ReferencedSOPInstanceUID = ct.study_instance_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = pydicom.Dataset()
    frame.FrameOfReferenceUID = ct.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    return Sequence([frame])


def build_rtstruct(ct: DicomSeries, label_array: np.ndarray, rois: list[RoiSpec], label: str = "LNStaging GTVn",
                   series_number: int = 901, progress: Progress | None = None) -> pydicom.Dataset:
    """The RT Structure Set dataset for ``rois`` drawn from ``label_array`` ([z, y, x] on the CT slices)."""
    if label_array.shape != tuple(reversed(ct.image.GetSize())):
        raise ExportError("Internal: the label array is not on the CT slices; resample it first.")
    progress = progress or Progress()
    date, time = now()
    ds = pydicom.Dataset()
    copy_patient_study(ct.first_dataset, ds)
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = new_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = new_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.OperatorsName = ""
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = SOFTWARE_VERSION
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = ct.frame_of_reference_uid  # Frame of Reference module (the CT's frame)
    ds.PositionReferenceIndicator = ct.first_dataset.get("PositionReferenceIndicator", "")
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDescription = DISCLAIMER
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.ApprovalStatus = "UNAPPROVED"
    ds.ReferencedFrameOfReferenceSequence = _referenced_frame_of_reference(ct)

    roi_items, contour_items, observation_items = [], [], []
    boxes = roi_boxes(label_array, rois)
    for n, roi in enumerate(rois):
        progress.step(n / max(len(rois), 1), f"contouring {roi.name}")
        item = pydicom.Dataset()
        item.ROINumber = roi.number
        item.ReferencedFrameOfReferenceUID = ct.frame_of_reference_uid
        item.ROIName = roi.name
        if roi.description:
            item.ROIDescription = fit_words(roi.description)
        item.ROIGenerationAlgorithm = roi.algorithm
        item.ROIGenerationDescription = SOFTWARE_VERSION
        roi_items.append(item)

        contours = []
        box = boxes.get(roi.number, (slice(0, 0),) * 3)
        crop = roi_mask(label_array[box], roi)
        for k, loops in mask_contours(crop, ct.image, offset=tuple(b.start for b in box)).items():
            for loop in loops:
                contour = pydicom.Dataset()
                contour.ContourImageSequence = Sequence([_image_reference(ct, k)])
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(loop)
                contour.ContourNumber = len(contours) + 1
                contour.ContourData = [_ds_number(v) for v in loop.ravel()]
                contours.append(contour)
        if not contours:
            raise ExportError(f"{roi.name} has no voxels on the CT slices: nothing to contour.")
        roi_contour = pydicom.Dataset()
        roi_contour.ROIDisplayColor = list(roi.colour)
        roi_contour.ReferencedROINumber = roi.number
        roi_contour.ContourSequence = Sequence(contours)
        contour_items.append(roi_contour)

        observation = pydicom.Dataset()
        observation.ObservationNumber = roi.number
        observation.ReferencedROINumber = roi.number
        observation.ROIObservationLabel = roi.name
        observation.RTROIInterpretedType = "GTV"
        observation.ROIInterpreter = ""
        observation_items.append(observation)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(observation_items)

    ds.file_meta = part10_meta(ds)
    missing = missing_rtstruct_attributes(ds)
    if missing:
        raise ExportError(f"Internal: the RTSTRUCT lacks required attributes {missing}; please report this.")
    progress.step(1.0, "RTSTRUCT built")
    return ds


def write_dataset(ds: pydicom.Dataset, out: Path | str) -> Path:
    """Write atomically: the file appears complete or not at all."""
    out = Path(out)
    with atomic_file(out) as tmp:
        save_file(ds, tmp)
    return out
