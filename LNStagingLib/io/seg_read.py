"""DICOM SEG to a label map (segment number = label) with the segment descriptions, via highdicom.

The label map is on the SEG's own frame geometry (highdicom builds the volume from the frame positions) or
resampled with nearest neighbour onto a given reference grid after a frame-of-reference check.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk

from ..errors import DicomError, InputFileError
from .dicom_series import DicomSeries
from .images import require_exists
from .resample import require_overlap, resample_to_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Code:
    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class SegmentInfo:
    """One segment's description: label value in the map, name and its standard terms."""

    label: int
    name: str
    category: Code | None
    type: Code | None
    anatomic_region: Code | None
    algorithm_type: str


@dataclass
class SegLabels:
    label_map: sitk.Image  # uint16, 0 = background, value = segment number
    segments: list[SegmentInfo]
    frame_of_reference_uid: str | None
    referenced_series_uids: list[str]


def _code(sequence) -> Code | None:
    if not sequence:
        return None
    item = sequence[0]
    return Code(str(item.get("CodeValue", "")), str(item.get("CodingSchemeDesignator", "")), str(item.get("CodeMeaning", "")))


def segment_infos(seg: hd.seg.Segmentation) -> list[SegmentInfo]:
    return [
        SegmentInfo(
            label=int(item.SegmentNumber),
            name=str(item.get("SegmentLabel", "")),
            category=_code(item.get("SegmentedPropertyCategoryCodeSequence")),
            type=_code(item.get("SegmentedPropertyTypeCodeSequence")),
            anatomic_region=_code(item.get("AnatomicRegionSequence")),
            algorithm_type=str(item.get("SegmentAlgorithmType", "")),
        )
        for item in seg.SegmentSequence
    ]


#: A voxel of a FRACTIONAL SEG (probability or occupancy) belongs to a segment from half its maximum value on: the
#: majority rule, so that a binary SEG converted to fractions and back is unchanged (docs/IO.md).
FRACTION_THRESHOLD = 0.5


def _combined(volume, inside) -> np.ndarray:
    """Per-segment channels of ``volume`` as one label map; where segments overlap the higher number wins."""
    numbers = volume.get_channel_values(volume.channel_descriptors[0])
    array = np.zeros(volume.spatial_shape, dtype=np.uint16)
    masks = [inside(volume.array[..., index]) for index in range(len(numbers))]
    if int(np.sum(masks, axis=0, dtype=np.uint16).max(initial=0)) > 1:
        log.warning("segments of the DICOM SEG overlap; the higher segment number is kept where they do")
    for number, mask in zip(numbers, masks):
        array[mask] = int(number)
    return array


def _label_volume(seg: hd.seg.Segmentation, path) -> sitk.Image:
    """Segments combined into one label map (slice axis last, LPS-oriented); where segments overlap the higher
    segment number wins, with a warning. A FRACTIONAL SEG is thresholded at FRACTION_THRESHOLD."""
    if not hasattr(seg, "get_volume"):  # highdicom < 0.23: the newest that installs beside pydicom 2.4 (Slicer 5.10)
        raise DicomError(f"Reading the DICOM SEG '{path}' needs highdicom 0.23 or later, which needs pydicom 3 "
                         f"(Slicer 5.12 or the command line's own environment): load it in Slicer's Segmentations "
                         f"module and save it as .seg.nrrd or NIfTI, then give that file.")
    try:
        if str(seg.get("SegmentationType", "")).upper() == "FRACTIONAL":
            volume = seg.get_volume(combine_segments=False, rescale_fractional=True)
            array = _combined(volume, lambda fraction: fraction >= FRACTION_THRESHOLD)
        else:
            try:
                volume = seg.get_volume(combine_segments=True, relabel=False)
                array = volume.array
            except ValueError:  # overlapping segments cannot be combined directly
                volume = seg.get_volume(combine_segments=False)
                array = _combined(volume, lambda channel: channel > 0)
    except (RuntimeError, AttributeError, ValueError, sqlite3.Error) as error:  # highdicom indexes frames in sqlite
        raise DicomError(f"DICOM SEG '{path}' has no regular 3D frame geometry ({error}): export it on the image "
                         f"series' slices.") from None
    image = volume.with_array(np.asarray(array, dtype=np.uint16)).to_simpleitk()
    return sitk.DICOMOrient(sitk.Cast(image, sitk.sitkUInt16), "LPS")


def read_seg(path: os.PathLike | str, reference: sitk.Image | DicomSeries | None = None) -> SegLabels:
    """Label map + segment descriptions; on ``reference``'s grid when given (else the SEG's own geometry)."""
    path = require_exists(path, "DICOM SEG")
    try:
        dataset = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError):
        raise InputFileError(f"'{path}' is not a DICOM file: give the DICOM SEG file.") from None
    if str(dataset.get("Modality", "")) != "SEG":
        raise InputFileError(f"'{path}' is a DICOM {dataset.get('Modality', 'object')}, not a segmentation (SEG).")
    seg = hd.seg.Segmentation.from_dataset(dataset, copy=False)
    frame = str(dataset.get("FrameOfReferenceUID", "")) or None
    series = [str(item.SeriesInstanceUID) for item in dataset.get("ReferencedSeriesSequence", [])
              if item.get("SeriesInstanceUID")]
    labels = _label_volume(seg, path)
    if reference is not None:
        image = reference.image if isinstance(reference, DicomSeries) else reference
        if isinstance(reference, DicomSeries) and frame and reference.frame_of_reference_uid \
                and frame != reference.frame_of_reference_uid:
            raise DicomError(f"DICOM SEG '{path}' belongs to another frame of reference than the "
                             f"{'PET' if reference.modality == 'PT' else reference.modality} images given: give the images it was made on.")
        require_overlap(labels, image, "SEG", "reference image")
        labels = resample_to_reference(labels, image, "nearest", 0)
    return SegLabels(labels, segment_infos(seg), frame, series)
