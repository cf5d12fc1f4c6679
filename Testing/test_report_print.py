"""Issue 26: report.html prints on one A4 page, tested by printing it with Chromium (Debian's, through Playwright).

The case is the IBSI STS_001 PET/CT (DICOM) run with the default models (none applies: ranked by SUVpeak), its 37
PET candidates extended to 60 (copies of real candidates under new ids, as a busy whole-body case would have), with
accepted, rejected and pending nodes and the full provenance of four models not applied. The printed PDF is saved
to Testing/artifacts/report_print/ and docs/images/report_print.png is a screenshot of the same page."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import SimpleITK as sitk

pytest.importorskip("playwright")

from LNStagingLib.cli import main  # noqa: E402
from LNStagingLib.report import ReviewInfo, render_report  # noqa: E402
from LNStagingLib.results import Results  # noqa: E402

STS = "ibsi_validation_sts/dicom/STS_001"
ARTIFACTS = Path(__file__).parent / "artifacts" / "report_print"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium): printing needs it")
    return path


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


def test_report_with_60_candidates_prints_on_one_a4_page(data_dir, tmp_path):
    out = tmp_path / "sts"
    ct_dir, pet_dir = data_dir / STS / "CT/image", data_dir / STS / "PET/image"
    assert main(["run", "--ct", str(ct_dir), "--pet", str(pet_dir), "--threads", "1", "--out", str(out)]) == 0
    results = Results.read(out)
    real = list(results.candidates)
    while len(results.candidates) < 60:
        extra = copy.deepcopy(real[len(results.candidates) % len(real)])
        extra.id = len(results.candidates) + 1
        results.candidates.append(extra)
    for c, state in zip(results.candidates, ["accepted"] * 3 + ["rejected"] * 2):
        c.review = state
    results.rank_candidates()
    from LNStagingLib.io.petct import load_pet_ct

    petct = load_pet_ct(ct_dir, pet_dir)
    page_html = render_report(results, petct.ct, petct.pet_suv,
                              review=ReviewInfo(case_id="STS_001", study_date="2000-09-07", reviewed=True,
                                                reviewer="Dr Test", saved_at="2026-12-07 10:00"))
    assert "60" in page_html and "more candidate(s) not listed" in page_html
    html_path = tmp_path / "report.html"
    html_path.write_text(page_html, encoding="utf-8")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(html_path.as_uri())
            page.emulate_media(media="print")
            pdf = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "report_60_candidates.pdf").write_bytes(pdf)
            page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
            page.screenshot(path=str(ARTIFACTS / "report_60_candidates.png"), full_page=True)
        finally:
            browser.close()
    assert pdf_pages(pdf) == 1, f"the report printed on {pdf_pages(pdf)} A4 pages"
    assert sitk.ReadImage(str(out / "gtv_ln.nii.gz")).GetSize() == petct.ct.GetSize()
