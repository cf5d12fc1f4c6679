"""Export refuses bad input with a message saying what to do, and then writes nothing; the CLI end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from export_roundtrip import ball_labels, dice, dicompyler_masks, sitk_ct, write_phantom_ct
from LNStagingLib import cli
from LNStagingLib.errors import Cancelled, DicomError, ExportError, GeometryError, ImageFormatError, InputFileError
from LNStagingLib.export.exporter import export_label_map
from LNStagingLib.progress import Progress
from LNStagingLib.results import Candidate, Results

IBSI = "ibsi_validation_sts"


@pytest.fixture(scope="module")
def ibsi(data_dir):
    ct_folder = data_dir / IBSI / "dicom/STS_001/CT/image"
    ct, uids = sitk_ct(ct_folder)
    return ct_folder, ct


def image_like(array, reference):
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def test_other_grid_is_refused_then_resampled(ibsi, data_dir, tmp_path):
    ct_folder, ct = ibsi
    pet_mask = sitk.ReadImage(str(data_dir / IBSI / "nifti/STS_001/PET_mask.nii.gz"))  # on the PET grid
    assert pet_mask.GetSize() != ct.GetSize()
    out = tmp_path / "RS.dcm"
    with pytest.raises(GeometryError, match="nearest-neighbour.*--resample"):
        export_label_map(pet_mask, ct_folder, out)
    assert list(tmp_path.iterdir()) == []
    export_label_map(pet_mask, ct_folder, out, resample=True)
    expected = sitk.GetArrayFromImage(sitk.Resample(pet_mask, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    assert dice(dicompyler_masks(ct_folder, out)["GTVn_01"], expected) > 0.99


def test_two_series_in_ct_folder(tmp_path):
    folder = tmp_path / "mixed"
    for n, origin in enumerate(((0.0, 0.0, 0.0), (5.0, 0.0, 0.0))):
        write_phantom_ct(folder / f"s{n}", 16, 16, 4, (1.0, 1.0), 2.0, (1, 0, 0), (0, 1, 0), origin)
    ct, _ = sitk_ct(folder / "s0")
    labels = image_like(np.ones((4, 16, 16), np.uint8), ct)
    with pytest.raises(DicomError) as error:
        export_label_map(labels, folder, tmp_path / "RS.dcm")
    uids = {str(pydicom.dcmread(next((folder / s).glob("*.dcm"))).SeriesInstanceUID) for s in ("s0", "s1")}
    assert all(uid in str(error.value) for uid in uids) and "2 image series" in str(error.value)
    assert not (tmp_path / "RS.dcm").exists()
    uid = str(pydicom.dcmread(next((folder / "s0").glob("*.dcm"))).SeriesInstanceUID)
    export_label_map(labels, folder, tmp_path / "RS.dcm", series_uid=uid)  # the user picks one: fine
    assert pydicom.dcmread(tmp_path / "RS.dcm").ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0] \
        .RTReferencedSeriesSequence[0].SeriesInstanceUID == uid


def test_no_nodes_and_nothing_accepted(ibsi, tmp_path):
    ct_folder, ct = ibsi
    empty = image_like(np.zeros(sitk.GetArrayFromImage(ct).shape, np.uint8), ct)
    with pytest.raises(ExportError, match="no nodes"):
        export_label_map(empty, ct_folder, tmp_path / "RS.dcm")
    one = sitk.GetArrayFromImage(empty)
    one[30, 100:105, 100:105] = 1
    with pytest.raises(ExportError, match="accept at least one"):
        export_label_map(image_like(one, ct), ct_folder, tmp_path / "RS.dcm", candidates=[Candidate(1, (0, 0, 0))])
    with pytest.raises(ImageFormatError, match="probability map"):
        export_label_map(image_like(one * 0.5, ct), ct_folder, tmp_path / "RS.dcm")
    assert list(tmp_path.iterdir()) == []


def test_cancel_leaves_no_file(ibsi, tmp_path):
    ct_folder, ct = ibsi
    array = np.zeros(sitk.GetArrayFromImage(ct).shape, np.uint8)
    array[30, 100:105, 100:105] = 1
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        export_label_map(image_like(array, ct), ct_folder, tmp_path / "RS.dcm", progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_rt_utils_mock_folder_with_broken_rtstructs(data_dir, tmp_path):
    """A CT folder that also holds (broken) RTSTRUCTs: they are not mistaken for the CT; an RTSTRUCT is no CT."""
    folder = data_dir / "rt_utils_mock_data"
    ct, uids = sitk_ct(folder)
    array = np.zeros(sitk.GetArrayFromImage(ct).shape, np.uint8)
    array[:, 200:240, 250:300] = 1
    out = tmp_path / "RS.dcm"
    export_label_map(image_like(array, ct), folder, out)
    ds = pydicom.dcmread(out)
    assert {c.ContourImageSequence[0].ReferencedSOPInstanceUID for c in ds.ROIContourSequence[0].ContourSequence} == set(uids)
    for broken in ("invalid_reference_rt.dcm", "non_existent_reference_rt.dcm"):
        with pytest.raises(InputFileError, match="is an RTSTRUCT, not a CT image"):
            export_label_map(image_like(array, ct), folder / broken, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_cli_export_rtstruct_and_seg(ibsi, tmp_path, capsys):
    ct_folder, ct = ibsi
    array = np.zeros(sitk.GetArrayFromImage(ct).shape, np.uint16)
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint((90.0, 90.0, 30.0)))
    array[:] = ball_labels(ct, [(1, centre, 8.0, 0.0), (2, centre + (30, 0, 0), 6.0, 0.0)])
    results = Results(gtv_ln=image_like(array, ct), candidates=[Candidate(1, (0, 0, 0), probability=0.9, review="accepted"),
                                                                Candidate(2, (0, 0, 0), probability=0.4)])
    results.write(tmp_path / "results")
    rs = tmp_path / "out" / "RS.dcm"
    argv = ["export", "rtstruct", "--ct-dicom", str(ct_folder), "--labels", str(tmp_path / "results/gtv_ln.nii.gz"),
            "--candidates", str(tmp_path / "results/candidates.json"), "--only-accepted", "--out", str(rs), "--quiet"]
    assert cli.main(argv) == 0
    assert [r.ROIName for r in pydicom.dcmread(rs).StructureSetROISequence] == ["GTVn_01"]
    assert "GTVn_01" in capsys.readouterr().out
    seg = tmp_path / "out" / "SEG.dcm"
    assert cli.main(["export", "seg", "--ct-dicom", str(ct_folder), "--results", str(tmp_path / "results"), "--combined",
                     "--out", str(seg), "--quiet"]) == 0
    assert [s.SegmentLabel for s in pydicom.dcmread(seg).SegmentSequence] == ["GTVn"]
    assert capsys.readouterr().err.strip() == ""  # the CT's own odd values (17-character Study ID) raise no noise
    # a user error: one line on stderr, exit code 2, no traceback, no file
    bad = tmp_path / "out" / "bad.dcm"
    code = cli.main(["export", "rtstruct", "--ct-dicom", str(tmp_path / "nowhere"), "--labels",
                     str(tmp_path / "results/gtv_ln.nii.gz"), "--out", str(bad), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lnstaging export: error:") and not bad.exists()
    (tmp_path / "broken.json").write_text(json.dumps({"candidates": [{"nope": 1}]}))
    assert cli.main(["export", "rtstruct", "--ct-dicom", str(ct_folder), "--labels", str(tmp_path / "results/gtv_ln.nii.gz"),
                     "--candidates", str(tmp_path / "broken.json"), "--out", str(bad), "--quiet"]) == 2
    assert "candidates.json" in capsys.readouterr().err and not bad.exists()
