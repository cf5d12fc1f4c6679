"""report.html regenerated from the saved review (``lnstaging report RESULTS``): decisions, edits, export summary
and time stamps; readable headers and numbers; one A4 page when Chromium prints it.

Case: the review fixture of test_export_review_rule (19 nodes on the real IBSI STS_001 CT, 2 accepted, 2
rejected) with the IBSI PET as the PET; an export is recorded, then a contour is edited so the export is stale.
"""

from __future__ import annotations

import re
import shutil

import pytest
import SimpleITK as sitk

from test_export_review_rule import ACCEPTED, REJECTED, reviewed  # noqa: F401  (the shared fixture)
from LNStagingLib import NOT_FOR_CLINICAL_USE
from LNStagingLib.cli import main as cli_main
from LNStagingLib.export.exporter import export_review
from LNStagingLib.export.review_rule import read_reviewed_results
from LNStagingLib.results import Results

IBSI_NIFTI = "ibsi_validation_sts/nifti/STS_001"


@pytest.fixture(scope="module")
def report_case(reviewed, data_dir, tmp_path_factory):  # noqa: F811
    run = tmp_path_factory.mktemp("report") / "STS_001"
    shutil.copytree(reviewed["run"], run)
    results, _ = read_reviewed_results(run)
    export_review(results, reviewed["ct_folder"], run / "export" / "RS.dcm", run / "review")
    edited = Results.read(run / "review")  # then a contour edit: node ACCEPTED[1] loses its voxels on one slice
    array = sitk.GetArrayFromImage(edited.gtv_ln)
    z = int(array.nonzero()[0][array[array.nonzero()] == ACCEPTED[1]].max())
    array[z][array[z] == ACCEPTED[1]] = 0
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(edited.gtv_ln)
    sitk.WriteImage(image, str(run / "review" / "gtv_ln.nii.gz"))
    nifti = data_dir / IBSI_NIFTI
    out = run / "review" / "report.html"
    assert cli_main(["report", str(run), "--ct", str(nifti / "CT_image.nii.gz"), "--pet",
                     str(nifti / "PET_image.nii.gz"), "--ct-dicom", str(reviewed["ct_folder"])]) == 0
    return run, out


def test_report_from_the_saved_review(report_case):
    run, out = report_case
    text = out.read_text()
    assert NOT_FOR_CLINICAL_USE in text and "Case STS_001" in text
    assert "study date " in text  # from the CT DICOM
    assert "2 accepted" in text and "2 rejected" in text and "15 pending" in text
    assert "RTSTRUCT written: 2 ROIs (2 accepted)" in text and "OUT OF DATE" in text  # edited after the export
    assert f"contours edited: GTVn_{ACCEPTED[1]:02d}" in text
    assert "p(metastasis)" in text and "Short axis (mm)" in text and "snake" not in text
    words = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert "e-0" not in words and "0.950" in words  # probabilities with 3 digits, never 7e-05
    assert "http" not in text.split("<body>")[1]  # self-contained
    assert not (run / "report.html").exists()  # the run's own files are untouched


def test_report_prints_on_one_a4_page(report_case, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    _, out = report_case
    pdf = tmp_path / "report.pdf"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.goto(out.as_uri())
        page.pdf(path=str(pdf), format="A4", prefer_css_page_size=True, print_background=True)
        browser.close()
    data = pdf.read_bytes()  # Chromium (Skia) writes one uncompressed /Type /Page dictionary per page
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert pages == 1, f"the report prints on {pages} A4 pages"
