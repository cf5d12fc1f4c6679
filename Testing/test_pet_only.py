"""Issue 26, the PET-only case: `lnstaging run --pet PET` without --ct, through every face.

Real data: the QIN head-and-neck PET (derived SUV crop, no CT; its DICOM SEG holds the primary tumour and 10
metastatic nodes) and the raw STS_001 FDG PET DICOM series (Bq/ml with its dose and timing tags, and the sarcoma's
RTSTRUCT drawn on it). The run ranks by
SUVpeak and applies no model (each recorded as not applied because no CT was given); `report RESULTS` and
`review RESULTS` need no image options; RTSTRUCT export is refused (no planning CT); a SEG references the PET series
when the run read one, else it is refused."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.io.checksums import input_sha256
from LNStagingLib.io.resample import same_grid
from LNStagingLib.results import Results

QIN = "mirp_qin_headneck_0139"
QIN_PET = f"{QIN}/derived/pet_suv_headneck_crop.nii.gz"
QIN_SEG = f"{QIN}/mask/mask.dcm"
RAW_PET = "mirp_sts_raw_pet/STS_001/FDG_PET/image"
RAW_PET_RTSTRUCT = "mirp_sts_raw_pet/STS_001/FDG_PET/mask/1-1.dcm"
NO_CT = "no CT given: every model reads the CT"
# words of a probability, a classifier's FROC or its operating point: none may appear when no classifier ran
PROBABILITY_WORDS = ("p(metastasis)", "FROC", "false positives", "p = ", "most probable")


def single_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def qin_run(data_dir, tmp_path_factory):
    """The QIN PET alone, its primary tumour from the SEG (the default: the only 'Neoplasm, Primary' segment)."""
    out = tmp_path_factory.mktemp("pet_only") / "qin"
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        code = main(["run", "--pet", str(data_dir / QIN_PET), "--tumor", str(data_dir / QIN_SEG), "--threads", "1",
                     "--out", str(out)])
    assert code == 0
    (out.parent / "stdout.txt").write_text(summary.getvalue())
    return out


def test_qin_run_records_that_no_model_ran_and_ranks_by_suv_peak(qin_run, data_dir):
    patient = json.loads((qin_run / "patient.json").read_text())
    assert patient["models_applied"] == []
    assert set(patient["models_not_applied"]) == {"seg", "cls", "identification", "patient"}
    assert all(NO_CT in why for why in patient["models_not_applied"].values())
    assert patient["ranking"] == "suv_peak" and patient["ranking_basis"]["kind"] == "suv_peak"
    assert patient["operating_point"] == {"basis": "suv_peak", "threshold": 2.5}
    assert patient["metastasis_probability"] is None and patient["largest_positive_ln_volume_ml"] is None
    provenance = json.loads((qin_run / "provenance.json").read_text())
    assert set(provenance["inputs"]) == {"pet", "tumor"}  # no CT recorded, and none invented
    assert provenance["inputs"]["pet"]["sha256"] == input_sha256(data_dir / QIN_PET)
    assert provenance["froc"] == [] and provenance["models_applied"] == {}
    with open(qin_run / "candidates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["probability"] == "" and r["ranked_by"] == "suv_peak" for r in rows)
    peaks = [float(r["suv_peak"]) for r in sorted(rows, key=lambda r: int(r["rank"]))]
    assert peaks == sorted(peaks, reverse=True) and min(peaks) >= 2.5
    # the PET's own grid is the reference of every result
    pet = sitk.ReadImage(str(data_dir / QIN_PET))
    assert same_grid(sitk.ReadImage(str(qin_run / "gtv_ln.nii.gz")), pet)
    summary = (qin_run.parent / "stdout.txt").read_text()
    assert "Ran: PET candidates from SUV rules" in summary and "Ran: PET-only run (no CT)" in summary
    assert not any("PET candidates" in line or "SUV rules" in line for line in summary.splitlines()
                   if line.startswith("Skipped:"))  # a step that ran is never listed as skipped


def test_qin_candidates_cover_every_metastatic_node_of_its_seg(qin_run, data_dir):
    """The SEG's 10 'Neoplasm, Secondary' segments (the metastatic nodes) each overlap a candidate; the primary
    (segment 1, given as --tumor) overlaps none: it is set apart, in other_findings.csv."""
    from LNStagingLib.io.mask_source import read_mask

    pet = sitk.ReadImage(str(data_dir / QIN_PET))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(qin_run / "gtv_ln.nii.gz")))
    seg = pydicom.dcmread(data_dir / QIN_SEG, stop_before_pixels=True)
    kinds = {int(s.SegmentNumber): s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in seg.SegmentSequence}
    assert list(kinds.values()).count("Neoplasm, Secondary") == 10
    for number, kind in kinds.items():
        mask = sitk.GetArrayFromImage(read_mask(data_dir / QIN_SEG, pet, what="segment", segment=str(number))) > 0
        hit = set(np.unique(labels[mask])) - {0}
        assert bool(hit) == (kind == "Neoplasm, Secondary"), (number, kind, hit)
    with open(qin_run / "other_findings.csv", newline="") as fh:
        assert "primary" in {row["reason"] for row in csv.DictReader(fh)}


def test_qin_report_needs_no_image_options_and_prints_on_one_a4_page(qin_run, tmp_path, capsys):
    from test_report_print import CHROMIUM_ARGS, chromium, pdf_pages

    assert main(["report", str(qin_run), "--out", str(tmp_path / "report.html")]) == 0
    assert "Report:" in capsys.readouterr().out
    page = (tmp_path / "report.html").read_text()
    assert "GTVn_01" in page and "PET MIP" in page and "PET only, no CT given" in page
    assert not [word for word in PROBABILITY_WORDS if word in page]
    assert "ranked by SUVpeak" in page and "SUVpeak ≥ 2.5" in page

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            printer = browser.new_page()
            printer.goto((tmp_path / "report.html").as_uri())
            printer.emulate_media(media="print")
            pdf = printer.pdf(format="A4", print_background=True, prefer_css_page_size=True)
        finally:
            browser.close()
    assert pdf_pages(pdf) == 1, f"the PET-only report printed on {pdf_pages(pdf)} A4 pages"


def test_qin_review_serves_the_pet_with_no_image_options(qin_run, tmp_path):
    from review_server import Server, get_json

    results = tmp_path / "qin"
    shutil.copytree(qin_run, results)  # the review writes into the results folder; the module's run stays clean
    server = Server([str(results), "--port", "0"], tmp_path / "review.log")
    try:
        status = get_json(server.base + "/lnstaging/status.json", timeout=30)
        candidates = json.loads((qin_run / "candidates.json").read_text())["candidates"]
        assert len(status["decisions"]) == len(candidates)
        assert set(status["probabilities"].values()) == {None}
        assert status["ct_window"] == [8.0, 4.0]  # the PET background in SUV 0-8, not a CT window in HU
        assert status["overlay"] == "none" and "PET-only" in status["export_disabled_reason"]
        assert "export seg" not in status["export_disabled_reason"]  # an SUV image file: no DICOM to reference
        assert status["threshold"] == 2.5
        with urllib.request.urlopen(server.base + "/lnstaging/download/report.html", timeout=60) as response:
            page = response.read().decode()
        assert "PET only, no CT given" in page and not [w for w in PROBABILITY_WORDS if w in page]
        assert "Traceback" not in server.stderr_text()
    finally:
        server.kill()


def test_qin_review_and_report_refuse_a_ct_for_a_pet_only_run(qin_run, data_dir, capsys):
    ct = data_dir / "ibsi_validation_sts/nifti/STS_001/CT_image.nii.gz"
    for command in (["review", str(qin_run), "--port", "0"], ["report", str(qin_run)]):
        assert main([*command, "--ct", str(ct)]) == 2
        assert "was run without a CT (PET-only)" in single_line_error(capsys)


def test_qin_exports_are_refused_in_one_line(qin_run, data_dir, tmp_path, capsys):
    out = tmp_path / "x.dcm"
    ct_dicom = data_dir / "ibsi_validation_sts/dicom/STS_001/CT/image"
    assert main(["export", "rtstruct", "--results", str(qin_run), "--ct-dicom", str(ct_dicom), "--out", str(out)]) == 2
    assert "needs the planning CT" in single_line_error(capsys)
    assert main(["export", "seg", "--results", str(qin_run), "--out", str(out)]) == 2
    assert "not a DICOM series" in single_line_error(capsys)
    assert main(["export", "seg", "--results", str(qin_run), "--ct-dicom", str(ct_dicom), "--out", str(out)]) == 2
    assert "leave --ct-dicom out" in single_line_error(capsys)
    assert not out.exists()


def test_dicom_pet_only_run_and_its_seg_on_the_pet_series(data_dir, tmp_path, capsys):
    """The raw STS_001 PET DICOM alone, its sarcoma from the RTSTRUCT drawn on that PET (ROI GTV_Mass): SUV from the
    tags, results on the PET's grid, no candidate inside the primary, a SEG that references the PET's slices."""
    from LNStagingLib.io.mask_source import read_mask
    from LNStagingLib.io.petct import load_pet_suv

    pet_dir = data_dir / RAW_PET
    rtstruct = data_dir / RAW_PET_RTSTRUCT
    out = tmp_path / "sts"
    assert main(["run", "--pet", str(pet_dir), "--tumor", str(rtstruct), "--tumor-roi", "GTV_Mass", "--models", "none",
                 "--threads", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    suv, factor, series = load_pet_suv(pet_dir)
    labels = sitk.ReadImage(str(out / "gtv_ln.nii.gz"))
    assert factor is not None and same_grid(labels, suv)
    candidates = json.loads((out / "candidates.json").read_text())["candidates"]
    assert candidates and all(c["probability"] is None for c in candidates)
    primary = sitk.GetArrayFromImage(read_mask(rtstruct, series, what="tumour", roi="GTV_Mass")) > 0
    assert primary.sum() > 0 and not sitk.GetArrayViewFromImage(labels)[primary].any()
    with open(out / "other_findings.csv", newline="") as fh:
        assert "primary" in {row["reason"] for row in csv.DictReader(fh)}
    assert json.loads((out / "patient.json").read_text())["models_not_applied"] == {}  # --models none: none given

    assert main(["export", "rtstruct", "--results", str(out), "--out", str(tmp_path / "rs.dcm")]) == 2
    assert "needs the planning CT" in single_line_error(capsys)
    from LNStagingLib.web.cases import find_cases

    case = find_cases(out)[0]  # the review page's Export writes this SEG (test_dicom_pet_only_review_exports_...)
    assert case.export_disabled_reason() == "" and case.export_kind == "seg"
    assert case.export_reference() == (pet_dir, None)
    seg_path = tmp_path / "seg.dcm"
    assert main(["export", "seg", "--results", str(out), "--include-pending", "--quiet", "--out", str(seg_path)]) == 0
    seg = pydicom.dcmread(seg_path)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_instance_uid
    assert seg.FrameOfReferenceUID == series.frame_of_reference_uid
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= set(series.sop_instance_uids)
    assert len(seg.SegmentSequence) == len(candidates)


def test_dicom_pet_only_review_exports_the_seg_onto_the_pet_series(data_dir, tmp_path):
    """The review page of a PET-only run on a PET DICOM folder: its Export control writes the DICOM SEG on the run's
    PET series (export/pet_only.py, as 'lnstaging export seg --results'), and the SEG download serves it; no
    RTSTRUCT is written or offered. Headless Chromium at 1920x1080."""
    pytest.importorskip("trame_slicer")
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright
    from review_server import Server, get_json
    from test_web_review import CHROMIUM_ARGS, chromium_path
    from waiting import wait_for

    from LNStagingLib.io.petct import load_pet_suv

    pet_dir = data_dir / RAW_PET
    out = tmp_path / "sts"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", "--pet", str(pet_dir), "--tumor", str(data_dir / RAW_PET_RTSTRUCT), "--tumor-roi",
                     "GTV_Mass", "--models", "none", "--threads", "1", "--out", str(out)]) == 0
    series = load_pet_suv(pet_dir)[2]
    server = Server([str(out), "--port", "0"], tmp_path / "review.log")
    executable = chromium_path()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                top = min(Results.read(out).candidates, key=lambda c: c.rank)
                page.goto(server.url)
                page.wait_for_selector(f"#cand-{top.id}", timeout=60000)
                status = get_json(server.base + "/lnstaging/status.json")
                assert status["export_disabled_reason"] == ""
                export = page.locator("#export")
                assert export.text_content().strip() == "Export SEG" and export.is_enabled()
                assert "PET DICOM series" in export.get_attribute("title")
                page.click(f"#accept-{top.id}")
                wait_for(lambda: get_json(server.base + "/lnstaging/status.json")["decisions"][str(top.id)]
                         == "accepted", what="the decision")
                page.click("#export")
                wait_for(lambda: get_json(server.base + "/lnstaging/status.json")["export_state"] == "current",
                         timeout=120, what="the SEG export")
                assert not page.locator("#download-rtstruct").is_visible()  # no RTSTRUCT without a planning CT
                assert not (out / "export" / "RS_LNStaging.dcm").exists()
                with page.expect_download() as download:
                    page.click("#download-seg")
                seg = pydicom.dcmread(download.value.path())
            finally:
                browser.close()
        assert "Traceback" not in server.stderr_text()
    finally:
        server.kill()
    assert seg.Modality == "SEG" and [s.SegmentLabel for s in seg.SegmentSequence] == [top.name]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_instance_uid
    assert seg.FrameOfReferenceUID == series.frame_of_reference_uid
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced and referenced <= set(series.sop_instance_uids)
    voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(Results.read(out / "review").gtv_ln) == top.id))
    assert int(np.count_nonzero(seg.pixel_array)) == voxels, "the SEG does not hold the accepted node's voxels"
