"""Issue 26 (self-contained results) and issue 25 item 13: a run records its inputs (relative path, sha256 of the
folder and of every file); `lnstaging review RESULTS` and `lnstaging report RESULTS` need no image options, take the
DICOM folders `run` takes, and refuse another patient's images in one line (--allow-other-images overrides): the
same check in both. Real data: IBSI STS_001 and STS_002 PET/CT DICOM."""

import json
import shutil

import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.web.cases import check_images_match_run, find_cases

STS = "ibsi_validation_sts/dicom"


@pytest.fixture(scope="module")
def moved_run(data_dir, tmp_path_factory):
    """STS_001 DICOM copied beside a results folder, run, then both moved together: only relative paths still hold."""
    first = tmp_path_factory.mktemp("self_contained") / "before"
    for part in ("CT", "PET"):
        shutil.copytree(data_dir / STS / "STS_001" / part / "image", first / "images" / part)
    assert main(["run", "--ct", str(first / "images/CT"), "--pet", str(first / "images/PET"), "--models", "none",
                 "--out", str(first / "results")]) == 0
    moved = first.parent / "after"
    first.rename(moved)
    return moved / "results"


def single_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_the_run_records_each_input_with_relative_path_and_per_file_sha256(moved_run):
    inputs = json.loads((moved_run / "provenance.json").read_text())["inputs"]
    for name in ("ct", "pet"):
        entry = inputs[name]
        assert entry["relative_path"] == f"../images/{name.upper()}" and len(entry["sha256"]) == 64
        assert len(entry["files"]) > 10 and all(len(sha) == 64 for sha in entry["files"].values())
    assert not (moved_run.parent.parent / "before").exists()  # the absolute paths recorded are gone


def test_report_needs_no_image_options_and_refuses_other_images(moved_run, data_dir, capsys):
    report = moved_run / "report.html"
    assert main(["report", str(moved_run), "--overwrite"]) == 0
    assert "Report:" in capsys.readouterr().out
    page = report.read_text()
    assert "PET MIP" in page and "GTVn_01" in page
    before = report.read_bytes()

    other_ct = data_dir / STS / "STS_002" / "CT" / "image"  # another patient's CT, also a DICOM folder
    assert main(["report", str(moved_run), "--ct", str(other_ct)]) == 2
    err = single_line_error(capsys)
    assert "is not the CT" in err and "--allow-other-images" in err
    assert report.read_bytes() == before  # refused: nothing written

    # the override: the images are read (a DICOM folder, not "Unable to determine ImageIO reader")
    assert main(["report", str(moved_run), "--ct", str(moved_run.parent / "images" / "CT"),
                 "--allow-other-images"]) == 0


def test_review_finds_the_recorded_dicom_images_and_refuses_other_images(moved_run, data_dir, capsys):
    (case,) = find_cases(moved_run)
    assert case.ct == moved_run.parent / "images" / "CT" and case.pet == moved_run.parent / "images" / "PET"
    assert case.ct_dicom == case.ct and case.export_disabled_reason() == ""  # the RTSTRUCT goes onto the run's CT
    assert check_images_match_run(case) is None
    ct, pet = case.load_images()
    assert ct.GetSize()[2] > 10 and pet is not None
    assert sitk.GetArrayViewFromImage(pet).max() > 5.0  # SUV, converted from the DICOM tags as the run did

    other_pet = data_dir / STS / "STS_002" / "PET" / "image"
    assert main(["review", str(moved_run), "--pet", str(other_pet), "--port", "0"]) == 2
    err = single_line_error(capsys)
    assert "is not the PET" in err and "--allow-other-images" in err


def test_a_changed_file_in_a_recorded_folder_is_named_in_the_refusal(moved_run, capsys):
    copy = moved_run.parent / "ct_copy"
    shutil.copytree(moved_run.parent / "images" / "CT", copy)
    first = sorted(copy.iterdir())[0]
    first.write_bytes(first.read_bytes() + b"\0")
    assert main(["report", str(moved_run), "--ct", str(copy), "--out", str(moved_run.parent / "r.html")]) == 2
    assert "1 of" in single_line_error(capsys)
    assert not (moved_run.parent / "r.html").exists()


def test_a_run_whose_images_are_gone_says_which_option_to_give(moved_run, tmp_path, capsys):
    lost = tmp_path / "lost"
    shutil.copytree(moved_run, lost / "results")  # the images stay behind: neither path finds them
    provenance = json.loads((lost / "results" / "provenance.json").read_text())
    provenance["inputs"]["ct"]["path"] = str(tmp_path / "nowhere" / "CT")
    (lost / "results" / "provenance.json").write_text(json.dumps(provenance))
    assert main(["report", str(lost / "results")]) == 2
    err = single_line_error(capsys)
    assert "no longer there" in err and "--ct" in err
