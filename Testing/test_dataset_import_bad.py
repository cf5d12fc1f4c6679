"""A bad DICOM export: one line per problem, and every patient that can be imported is."""

import csv
import json
import shutil

import pydicom
import pytest
from pydicom.uid import generate_uid

from LNStagingLib.cli import main
from LNStagingLib.dataset.check import check_dataset
from LNStagingLib.dataset.dicom_import.roi_roles import RoiRules, assign_roles, load_roi_map
from LNStagingLib.errors import InputFileError
from LNStagingLib.phantom.dicom_export import write_dicom_export


def _files(folder, modality):
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if str(pydicom.dcmread(path, stop_before_pixels=True).get("Modality", "")) == modality:
            found.append(path)
    return found


def _rewrite(path, change):
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


@pytest.fixture(scope="module")
def bad_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    patients = write_dicom_export(root / "export", seed=11, cases=6)
    dicom = root / "export" / "dicom"
    folders = {p.patient_id: dicom / f"patient_{k + 1:02d}" for k, p in enumerate(patients)}
    ids = [p.patient_id for p in patients]
    # 1: no PET
    for path in _files(folders[ids[0]], "PT"):
        path.unlink()
    # 2: a second CT series in the study, and a structure set that names neither CT (only the frame of reference)
    second_uid = generate_uid()
    for k, path in enumerate(_files(folders[ids[1]], "CT")):
        copy = folders[ids[1]] / "CT2" / f"{k:04d}.dcm"
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(path, copy)
        _rewrite(copy, lambda ds: (setattr(ds, "SeriesInstanceUID", second_uid),
                                   setattr(ds, "SOPInstanceUID", generate_uid())))

    def drop_series_reference(ds):
        for frame in ds.ReferencedFrameOfReferenceSequence:
            for study in frame.RTReferencedStudySequence:
                for series in study.RTReferencedSeriesSequence:
                    series.SeriesInstanceUID = generate_uid()
                    del series.ContourImageSequence
        for roi in ds.ROIContourSequence:
            for contour in roi.ContourSequence:
                del contour.ContourImageSequence
    _rewrite(_files(folders[ids[1]], "RTSTRUCT")[0], drop_series_reference)
    # 3: an RTSTRUCT drawn on another frame of reference. Patient 3 (index 2) has a SEG: use patient 4.
    other = generate_uid()

    def move_frame(ds):
        for frame in ds.ReferencedFrameOfReferenceSequence:
            frame.FrameOfReferenceUID = other
        for roi in ds.StructureSetROISequence:
            roi.ReferencedFrameOfReferenceUID = other
        ds.FrameOfReferenceUID = other
    _rewrite(_files(folders[ids[3]], "RTSTRUCT")[0], move_frame)
    # 4: an ROI name matching two roles (patient 5)
    def two_roles(ds):
        ds.StructureSetROISequence[1].ROIName = "GTVp_GTVn"
    _rewrite(_files(folders[ids[4]], "RTSTRUCT")[0], two_roles)
    # 5: unreadable files next to patient 6 (a truncated DICOM file) and a stray text file
    source = _files(folders[ids[5]], "CT")[0]
    (folders[ids[5]] / "broken.dcm").write_bytes(source.read_bytes()[:300])
    (folders[ids[5]] / "README.txt").write_text("exported by PACS")
    return root, patients


@pytest.fixture(scope="module")
def imported(bad_export):
    import contextlib
    import io

    root, patients = bad_export
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["dataset", "import", "--dicom", str(root / "export" / "dicom"), "--out", str(root / "cohort")])
    with open(root / "cohort_patient_ids.csv") as handle:
        mapping = {row["patient_id"]: row["case_id"] for row in csv.DictReader(handle)}
    return code, stdout.getvalue(), root, patients, mapping


def test_one_line_per_problem_and_the_rest_is_imported(imported):
    code, out, root, patients, mapping = imported
    assert code == 1
    ids = [p.patient_id for p in patients]
    lines = out.splitlines()

    def line_of(patient_index):
        found = [line for line in lines if line.startswith(mapping[ids[patient_index]] + ": ") and "note" not in line
                 and "SUVbw" not in line and "matched by no rule" not in line]
        assert len(found) == 1, (patient_index, lines)
        return found[0]

    assert "no PET series for this patient" in line_of(0)
    assert "2 CT series" in line_of(1) and "export only the CT the contours were drawn on" in line_of(1)
    assert "another Frame of Reference" in line_of(3)
    assert "'GTVp_GTVn' (gtv_ln and tumor)" in line_of(4)
    assert [line for line in lines if line.startswith("unreadable file")] == [
        "unreadable file (not imported): patient_06/broken.dcm"]
    assert not any("PHANTOM" in line for line in lines)  # pseudonyms only
    cases = json.loads((root / "cohort" / "dataset.json").read_text())["cases"]
    assert sorted(cases) == sorted([mapping[ids[2]], mapping[ids[5]]])
    assert check_dataset(root / "cohort").problems == []
    summary = json.loads((root / "cohort_import_summary.json").read_text())
    assert len(summary["failed"]) == 4 and summary["unreadable_files"] == 1


def test_a_roi_map_settles_the_two_role_name(imported, tmp_path):
    _, _, root, patients, mapping = imported
    roi_map = tmp_path / "map.json"
    roi_map.write_text(json.dumps({"^GTVp_GTVn$": "gtv_ln"}))
    assert main(["dataset", "import", "--dicom", str(root / "export" / "dicom"), "--out", str(root / "cohort"),
                 "--roi-map", str(roi_map)]) == 1  # the other three problems remain
    assert mapping[patients[4].patient_id] in json.loads((root / "cohort" / "dataset.json").read_text())["cases"]


def test_default_patterns_follow_tg263_and_leave_unknown_names_alone():
    rules = RoiRules()
    roles = assign_roles(["GTVp", "GTV_T", "GTV-Primary", "GTV_Mass_CT", "GTVn_L_II", "GTV_LN_1", "GTVn2", "LN_3",
                          "Node 4", "GTV", "GTVp+5mm", "z_GTVn_ring", "PTV_60", "External", "LN_R_IV"], rules)
    assert roles.by_role["tumor"] == ["GTVp", "GTV_T", "GTV-Primary", "GTV_Mass_CT"]
    assert roles.by_role["gtv_ln"] == ["GTVn_L_II", "GTV_LN_1", "GTVn2"]
    assert roles.by_role["lymph_nodes"] == ["LN_3", "Node 4"]
    assert roles.unmatched == ["GTV", "GTVp+5mm", "z_GTVn_ring", "PTV_60", "External", "LN_R_IV"]


def test_roi_map_errors_are_one_line(tmp_path):
    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"^LN": "node"}))
    with pytest.raises(InputFileError, match="role 'node'"):
        load_roi_map(bad)
    bad.write_text(json.dumps({"(": "tumor"}))
    with pytest.raises(InputFileError, match="not a regular expression"):
        load_roi_map(bad)


def _remap_uids(ds, mapping):
    """Every instance UID in ds (recursively) replaced by a new one, consistently across files; standard UIDs kept."""
    for element in ds.iterall():
        if element.VR == "UI" and element.value and not str(element.value).startswith("1.2.840.10008"):
            element.value = mapping.setdefault(str(element.value), generate_uid())


def test_a_second_study_and_an_rt_only_study_are_paired_by_frame_of_reference(bad_export, tmp_path):
    root, patients = bad_export
    source = root / "export" / "dicom" / "patient_06"
    export = tmp_path / "export"
    shutil.copytree(source, export / "first", ignore=shutil.ignore_patterns("broken.dcm", "*.txt"))
    mapping = {}
    for path in sorted((export / "first").rglob("*")):
        if path.is_file():
            ds = pydicom.dcmread(path)
            _remap_uids(ds, mapping)
            if ds.Modality == "RTSTRUCT":  # the follow-up's contours filed in an RT study of their own
                ds.StudyInstanceUID = generate_uid()
            target = export / "followup" / path.relative_to(export / "first")
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target)
    assert main(["dataset", "import", "--dicom", str(export), "--out", str(tmp_path / "cohort")]) == 0
    description = json.loads((tmp_path / "cohort" / "dataset.json").read_text())
    assert description["cases"] == ["pt0001", "pt0001s2"]
    with open(tmp_path / "cohort_patient_ids.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case_id"] for r in rows] == ["pt0001", "pt0001s2"]  # the RT-only study is no case
    place = lambda c: description["folds"].get(c, "test")  # noqa: E731
    assert place("pt0001") == place("pt0001s2")  # one patient, one split
    first, second = (tmp_path / "cohort" / "cases" / c / "tumor.nii.gz" for c in ("pt0001", "pt0001s2"))
    assert (_array(first) == _array(second)).all()


def _array(path):
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_an_earlier_structure_set_version_and_a_frameless_one(bad_export, tmp_path, capsys):
    """Patient 5 with an older draft of its RTSTRUCT (same ROIs, earlier date, one contour): the newer one is imported
    and a note says so; the newer one names no Frame of Reference at all (some planning systems): it is taken from the
    PET/CT's study and checked against the CT's geometry by the reader."""
    root, patients = bad_export
    export = tmp_path / "export"
    shutil.copytree(root / "export" / "dicom" / "patient_05", export / "p5")
    rtstruct = _files(export / "p5", "RTSTRUCT")[0]

    def repaired_and_frameless(ds):
        ds.StructureSetROISequence[1].ROIName = patients[4].roi_names[1]  # undo the two-role name of the fixture
        del ds.ReferencedFrameOfReferenceSequence
        for roi in ds.StructureSetROISequence:
            del roi.ReferencedFrameOfReferenceUID
    _rewrite(rtstruct, repaired_and_frameless)
    older = pydicom.dcmread(_files(root / "export" / "dicom" / "patient_05", "RTSTRUCT")[0])
    older.SOPInstanceUID, older.SeriesInstanceUID = generate_uid(), generate_uid()
    older.file_meta.MediaStorageSOPInstanceUID = older.SOPInstanceUID
    older.StructureSetDate = "19990101"
    older.StructureSetROISequence[1].ROIName = patients[4].roi_names[1]
    older.ROIContourSequence[0].ContourSequence = older.ROIContourSequence[0].ContourSequence[:1]  # a draft
    older.save_as(export / "p5" / "RS_old.dcm")
    assert main(["dataset", "import", "--dicom", str(export), "--out", str(tmp_path / "cohort")]) == 0
    assert "an earlier version" in capsys.readouterr().out
    ours = _array(tmp_path / "cohort" / "cases" / "pt0001" / "tumor.nii.gz") > 0
    import SimpleITK as sitk

    assert (ours == (sitk.GetArrayFromImage(patients[4].case.tumor) > 0)).all()  # the full contour, not the draft


def test_pet_timing_problems_give_the_line_of_lnstaging_suv(bad_export, tmp_path, capsys):
    root, _ = bad_export
    export = tmp_path / "export"
    shutil.copytree(root / "export" / "dicom" / "patient_03", export / "p3")

    def injected_after_the_scan(ds):
        item = ds.RadiopharmaceuticalInformationSequence[0]
        del item.RadiopharmaceuticalStartDateTime
        item.RadiopharmaceuticalStartTime = "103000"  # the scan starts at 10:00
    for path in _files(export / "p3", "PT"):
        _rewrite(path, injected_after_the_scan)
    assert main(["suv", str(export / "p3" / "PET"), "--out", str(tmp_path / "suv.nii.gz")]) == 2
    suv_line = capsys.readouterr().err.strip().split(": error: ", 1)[1]
    assert "after the scan start" in suv_line
    assert main(["dataset", "import", "--dicom", str(export), "--out", str(tmp_path / "cohort")]) == 2
    out = capsys.readouterr().out
    assert f"pt0001: {suv_line}" in out.splitlines()
    assert not (tmp_path / "cohort" / "cases" / "pt0001").exists()


def test_seg_segments_without_role_names_are_placed_by_their_codes(data_dir):
    """The real QIN-HEADNECK SEG: 'Neoplasm, Primary' and ten 'Neoplasm, Secondary' segments in lymph nodes."""
    from LNStagingLib.dataset.dicom_import.case_import import segment_names
    from LNStagingLib.dataset.dicom_import.roi_roles import segment_code_role
    from LNStagingLib.io.seg_read import read_seg

    segments = read_seg(data_dir / "mirp_qin_headneck_0139" / "mask" / "mask.dcm").segments
    names = segment_names(segments)
    assert len(set(names)) == 11
    coded = {n: segment_code_role(s) for n, s in zip(names, segments)}
    roles = assign_roles(names, RoiRules(), coded)
    assert roles.by_role["tumor"] == ["Neoplasm, Primary"]
    assert roles.by_role["gtv_ln"] == [f"Neoplasm, Secondary #{k}" for k in range(2, 12)]
    assert roles.unmatched == [] and roles.conflicts == {}


def test_two_node_rois_under_one_name_are_refused(bad_export, tmp_path, capsys):
    root, patients = bad_export
    export = tmp_path / "export"
    shutil.copytree(root / "export" / "dicom" / "patient_05", export / "p5")

    def same_name(ds):
        ds.StructureSetROISequence[1].ROIName = "GTVn"
        ds.StructureSetROISequence[2].ROIName = "GTVn"
    _rewrite(_files(export / "p5", "RTSTRUCT")[0], same_name)
    assert main(["dataset", "import", "--dicom", str(export), "--out", str(tmp_path / "cohort")]) == 2
    assert "pt0001: ROI name(s) GTVn appear more than once" in capsys.readouterr().out
