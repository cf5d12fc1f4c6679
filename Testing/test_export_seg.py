"""DICOM SEG export (highdicom): same segments as the RTSTRUCT, nodal terminology, references to the CT, round trip."""

from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from export_roundtrip import ball_labels, dice, sitk_ct, write_phantom_ct
from LNStagingLib.export.exporter import export_label_map
from LNStagingLib.results import Candidate

IBSI_CT = "ibsi_validation_sts/dicom/STS_001/CT/image"


def masks_from_seg(seg_path, uids: list[str], shape) -> dict[str, np.ndarray]:
    """Segment label -> mask [z, y, x], placed by each frame's referenced CT SOP Instance UID (highdicom reader)."""
    seg = hd.seg.segread(str(seg_path))
    masks = {}
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).segment_label
        mask = np.zeros(shape, bool)
        for f, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
            ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            identification = frame if "SegmentIdentificationSequence" in frame else seg.SharedFunctionalGroupsSequence[0]
            segment = identification.SegmentIdentificationSequence[0].ReferencedSegmentNumber
            if segment == number:
                mask[uids.index(ref)] |= seg.pixel_array[f].astype(bool)
        masks[label] = mask
    return masks


@pytest.fixture(scope="module")
def ibsi_seg(data_dir, tmp_path_factory):
    ct_folder = data_dir / IBSI_CT
    ct, uids = sitk_ct(ct_folder)
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint((100.0, 100.0, 30.0)))
    labels = ball_labels(ct, [(1, centre, 12.0, 5.0), (2, centre + (40, 0, 0), 7.0, 0.0)])
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    out = tmp_path_factory.mktemp("seg") / "SEG.dcm"
    summary = export_label_map(image, ct_folder, out, kind="seg",
                               candidates=[Candidate(1, (0, 0, 0), probability=0.9), Candidate(2, (0, 0, 0), source="user")],
                               include_pending=True)
    return ct_folder, out, labels, uids, summary


def test_seg_roundtrip_and_terminology(ibsi_seg):
    ct_folder, out, labels, uids, summary = ibsi_seg
    ds = pydicom.dcmread(out)
    ct = pydicom.dcmread(next(ct_folder.glob("*.dcm")), stop_before_pixels=True)
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == ct.StudyInstanceUID and ds.PatientID == ct.PatientID
    assert ds.FrameOfReferenceUID == ct.FrameOfReferenceUID and ds.SeriesInstanceUID != ct.SeriesInstanceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.SeriesInstanceUID
    assert "NOT FOR CLINICAL USE" in ds.SeriesDescription
    segments = {s.SegmentLabel: s for s in ds.SegmentSequence}
    assert sorted(segments) == ["GTVn_01", "GTVn_02"]
    for s in segments.values():
        assert (s.SegmentedPropertyCategoryCodeSequence[0].CodeValue, s.SegmentedPropertyCategoryCodeSequence[0].CodingSchemeDesignator) == ("49755003", "SCT")
        assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == "14799000"
        assert s.AnatomicRegionSequence[0].CodeValue == "59441001"
    assert segments["GTVn_01"].SegmentAlgorithmType == "AUTOMATIC" and segments["GTVn_02"].SegmentAlgorithmType == "MANUAL"
    masks = masks_from_seg(out, uids, labels.shape)
    for value, name in ((1, "GTVn_01"), (2, "GTVn_02")):
        assert dice(masks[name], labels == value) == 1.0


def test_seg_on_oblique_phantom(tmp_path):
    """Frames go with the right CT slices on a non-axial series too."""
    ct_folder = tmp_path / "ct"
    write_phantom_ct(ct_folder, 40, 48, 16, (1.0, 1.0), 2.0, (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (0.0, -20.0, 30.0))
    ct, uids = sitk_ct(ct_folder)
    labels = ball_labels(ct, [(3, ct.TransformContinuousIndexToPhysicalPoint((20.0, 20.0, 8.0)), 8.0, 3.0)])
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    export_label_map(image, ct_folder, tmp_path / "SEG.dcm", kind="seg")
    assert dice(masks_from_seg(tmp_path / "SEG.dcm", uids, labels.shape)["GTVn_03"], labels == 3) == 1.0
    if shutil.which("dciodvfy"):  # on a clean CT, dciodvfy has nothing at all to say about our file
        result = subprocess.run(["dciodvfy", str(tmp_path / "SEG.dcm")], capture_output=True, text=True, timeout=60)
        assert [x for x in (result.stdout + result.stderr).splitlines() if x.startswith(("Error", "Warning"))] == []


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian package dicom3tools) is not installed")
def test_dciodvfy_accepts_seg(ibsi_seg):
    ct_folder, out, *_ = ibsi_seg

    def errors(path):
        r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        return [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("Error")]

    inherited = set(errors(next(ct_folder.glob("*.dcm"))))
    assert [e for e in errors(out) if e not in inherited and "invalid data values" not in e] == []
