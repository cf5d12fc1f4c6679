"""Issue 26 (1): one source of truth for what ran. On the IBSI STS_001 PET/CT (DICOM, thigh sarcoma, no tumour
given) none of the bundled phantom models applies: every face says so, ranks by SUVpeak, shows no probability
column and no FROC figure, and writes null (not 0) for what was not computed. A stage-1 score is never shown as a
metastasis probability."""

import csv
import json
import re

import pytest
from stage1_support import run_sts_with_stage1_without_attention

from LNStagingLib.cli import main
from LNStagingLib.results import Candidate, PatientResult, Results

STS = "ibsi_validation_sts/dicom/STS_001"
BUNDLED = {"seg": "demo-seg", "cls": "demo-cls", "identification": "demo-identification", "patient": "demo-patient"}


@pytest.fixture(scope="module")
def sts_run(data_dir, tmp_path_factory):
    """`lnstaging run` with the default (phantom, abdominal) models on the STS DICOM folders; (folder, stdout)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("what_ran") / "sts"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", "--ct", str(data_dir / STS / "CT/image"), "--pet", str(data_dir / STS / "PET/image"),
                     "--threads", "1", "--out", str(out)])
    assert code == 0
    return out, printed.getvalue()


def test_no_face_names_a_model_that_did_not_run(sts_run):
    out, printed = sts_run
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["models_applied"] == {} and "models" not in provenance
    assert set(provenance["models_not_applied"]) == set(BUNDLED)
    for stage, info in provenance["models_not_applied"].items():
        assert info["id"] == BUNDLED[stage] and "abdomen/pancreas" in info["reason"] and len(info["sha256"]) == 64
    assert provenance["froc"] == [] and provenance["ranking_basis"]["kind"] == "suv_peak"

    patient = json.loads((out / "patient.json").read_text())
    assert patient["metastasis_probability"] is None and patient["largest_positive_ln_volume_ml"] is None
    assert patient["operating_point"] == {"basis": "suv_peak", "threshold": 2.5}  # the PET detector's default
    assert "expected_fp_per_patient" not in json.dumps(patient)
    assert patient["models_applied"] == [] and set(patient["models_not_applied"]) == set(BUNDLED)

    data = json.loads((out / "candidates.json").read_text())
    assert data["ranking_basis"] == {"kind": "suv_peak", "label": "SUVpeak", "model": None, "stage": None}
    assert data["candidates"] and all(c["probability"] is None for c in data["candidates"])
    peaks = [c["suv_peak"] for c in sorted(data["candidates"], key=lambda c: c["rank"])]
    assert peaks == sorted(peaks, reverse=True) and min(peaks) >= 2.5  # ranked by SUVpeak, all at the threshold
    with open(out / "candidates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["probability"] == "" and r["ranked_by"] == "suv_peak" for r in rows)

    report = (out / "report.html").read_text()
    body = report.split("<body>")[1]
    assert "p(metastasis)" not in body and "FROC" not in body and "false positives" not in body
    assert "SUVpeak ≥ 2.5" in body and "not computed (no patient-level model ran)" in body
    for stage, model in BUNDLED.items():
        assert f"{model} ({stage}) not applied" in body and f"{model} ({stage}) applied" not in body

    # the CLI: the PET candidates ran (not "Skipped:"), each model said once as not applied
    assert re.search(r"^Ran: PET candidates from SUV rules", printed, re.M)
    assert not re.search(r"^Skipped: PET candidates", printed, re.M)
    for stage, model in BUNDLED.items():
        assert printed.count(f"{model} ({stage}) not applied") == 1
    assert "No stage-2 model" not in printed  # a model was given; it did not apply, for the reason printed


def test_stage1_scores_are_not_shown_as_a_metastasis_probability(data_dir, tmp_path, capsys):
    """--models seg=<a stage-1 model without attention>: its scores stay in "scores", the list ranks by SUVpeak, no
    "largest positive LN volume" is derived from them."""
    out, printed = run_sts_with_stage1_without_attention(data_dir, tmp_path, capsys)
    data = json.loads((out / "candidates.json").read_text())
    assert any("stage1" in c["scores"] for c in data["candidates"])
    assert all(c["probability"] is None for c in data["candidates"]) and data["ranking"] == "suv_peak"
    patient = json.loads((out / "patient.json").read_text())
    assert patient["largest_positive_ln_volume_ml"] is None and patient["models_applied"] == ["seg"]
    assert "seg_noattention.pt (seg) applied" in printed
    assert "p(metastasis)" not in (out / "report.html").read_text().split("<body>")[1]


def test_values_not_computed_are_null_in_json_and_empty_in_csv(tmp_path):
    r = Results(candidates=[Candidate(1, (0, 0, 0), suv_max=float("nan"))], patient=PatientResult(),
                ranking="suv_peak")
    r.write(tmp_path)
    raw = (tmp_path / "candidates.json").read_text()
    assert "NaN" not in raw and json.loads(raw)["candidates"][0]["suv_peak"] is None
    assert (tmp_path / "candidates.csv").read_text().splitlines()[1].split(",")[9:11] == ["", ""]
    back = Results.read(tmp_path)
    assert back.candidates[0].suv_peak != back.candidates[0].suv_peak  # NaN again in memory
    assert back.ranking_value(back.candidates[0]) is None and back.ranking_basis["kind"] == "suv_peak"
