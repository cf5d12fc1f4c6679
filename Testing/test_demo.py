"""`lnstaging demo` (what `make demo` runs): the bundled phantom case through every stage with the shipped demo
weights, verified against the case's ground truth."""

import json

import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.commands.demo import DEMO_DATA


def test_demo_runs_every_stage_and_ranks_a_true_node_first(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--threads", "1", "--out", str(out)]) == 0
    assert f"Report: {out / 'report.html'}" in capsys.readouterr().out
    candidates = json.loads((out / "candidates.json").read_text())["candidates"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert set(provenance["models_applied"]) == {"seg", "cls", "identification", "patient"}
    assert provenance["models_not_applied"] == {} and provenance["ranking_basis"]["model"] == "demo-cls"
    assert len(candidates) >= 5 and all(c["source"] == "stage1" for c in candidates)
    assert all({"stage1", "stage2", "identification"} <= set(c["scores"]) for c in candidates)
    case = next((DEMO_DATA / "cases").iterdir())
    truth = sitk.ReadImage(str(case / "gtv_ln.nii.gz"))
    top = min(candidates, key=lambda c: c["rank"])
    assert truth[truth.TransformPhysicalPointToIndex(top["centroid_lps"])] != 0, "top candidate is not a GTV_LN"
    patient = json.loads((out / "patient.json").read_text())
    assert patient["metastasis_probability"] is not None and "expected_fp_per_patient" in patient["operating_point"]
