"""scripts/install_demo_models.py with tiny checkpoints in a temporary work folder (no training): the re-scoring
model (demo-cls-rescore, issue 19) gets a catalogue entry that follows Models.schema.json, is not the default cls
model, says where it applies and that it is phantom-trained, and a model card that says what its review-state input
is; once installed, `lnstaging review --rescore-model demo-cls-rescore` and the Slicer module's model list pick it
up from the catalogue, and the module re-scores with it."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from LNStagingLib.models import catalogue as catalogue_module
from LNStagingLib.models.catalogue import Catalogue, resolve_model_file
from LNStagingLib.models.checkpoint import save_checkpoint, sha256_of
from LNStagingLib.models.stage2 import Stage2Model, stage2_config

ROOT = Path(__file__).resolve().parents[1]
TRAINING_DATA = {"dataset": "phantom-seed11", "fold": 0, "train_cases": 27, "val_cases": 9}


def load_script():
    spec = importlib.util.spec_from_file_location("install_demo_models", ROOT / "scripts" / "install_demo_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A work folder holding what train_demo_models.py writes for cls_gnnp and cls_gnnp_reveal (tiny, untrained),
    installed into a temporary Resources/ that the catalogue then reads."""
    work = tmp_path / "work"
    for run, review_state in (("cls_gnnp", False), ("cls_gnnp_reveal", True)):
        torch.manual_seed(1)
        config = stage2_config("tiny", head="gnnp", use_priors=False, review_state=review_state)
        (work / run).mkdir(parents=True)
        save_checkpoint(work / run / "cls_model.pt", Stage2Model(config), config,
                        training_data={**TRAINING_DATA, "reveal_labels": review_state})
        (work / run / "eval_cls_test.json").write_text(json.dumps({
            "metrics": {"mFROC": 0.5, "sens@2FP": 0.4},
            "froc": {"fp_per_patient": [0.5, 2.0, 1.0], "thresholds": [0.8, 0.3, 0.6]}}))
    resources = tmp_path / "Resources"
    resources.mkdir()
    shutil.copyfile(ROOT / "Resources" / "Models.schema.json", resources / "Models.schema.json")
    entries = load_script().install_models(work, resources)
    monkeypatch.setattr(catalogue_module, "RESOURCES_DIR", resources)  # Catalogue.read() now reads this one
    return resources, {e["id"]: e for e in entries}


def test_the_rescoring_entry_and_model_card(installed):
    resources, entries = installed
    assert sorted(entries) == ["demo-cls", "demo-cls-rescore"]
    catalogue = Catalogue.read(resources / "Models.json")  # validated against Models.schema.json
    rescore, plain = catalogue.get("demo-cls-rescore", "cls"), catalogue.get("demo-cls", "cls")
    assert catalogue.default_id("cls") == "demo-cls" and not rescore.default and plain.default
    assert "review decisions" in rescore.inputs and "review decisions" not in plain.inputs
    assert (rescore.body_site, rescore.training_domain) == ("abdomen/pancreas", "synthetic phantom")
    assert (plain.body_site, plain.training_domain) == ("abdomen/pancreas", "synthetic phantom")
    assert rescore.training_data["kind"] == "synthetic" and rescore.training_data["reveal_labels"] is True
    assert rescore.metrics["froc"] == [[0.5, 0.8], [1.0, 0.6], [2.0, 0.3]]
    assert sha256_of(resources / rescore.file) == rescore.sha256 and catalogue.resolve(rescore.id).is_file()
    assert "re-scores from review decisions" in rescore.description and "Not for clinical use" in rescore.description
    card = (resources / rescore.model_card).read_text()
    assert "synthetic phantoms only" in card and "Body site: abdomen/pancreas" in card
    assert "Training domain: synthetic phantom" in card
    assert "accepted / rejected / unknown" in card and "--reveal-labels" in card
    assert "--rescore-model demo-cls-rescore" in card and "says nothing about patients" in card
    plain_card = (resources / plain.model_card).read_text()
    assert "Review state" not in plain_card and "Body site: abdomen/pancreas" in plain_card


def test_review_and_the_slicer_module_pick_it_up(installed, tmp_path):
    resources, entries = installed
    catalogue = Catalogue.read()
    assert catalogue.rescore_model_ids() == ["demo-cls-rescore"]  # read from the checkpoints' configurations
    path, sha256 = resolve_model_file("demo-cls-rescore", "cls")  # what lnstaging review --rescore-model does
    assert path == resources / "models" / "demo-cls-rescore.pt" and sha256 == entries["demo-cls-rescore"]["sha256"]
    from LNStagingLib.errors import ModelError

    with pytest.raises(ModelError, match="neither a model file nor a cls model of the catalogue"):
        resolve_model_file("demo-seg-rescore", "cls")
    with pytest.raises(ModelError, match="is a 'cls' model"):
        resolve_model_file("demo-cls-rescore", "seg")


def test_the_review_command_refuses_an_unknown_rescoring_model_in_one_line(installed, tmp_path, capsys):
    from scene_fixtures import make_case
    import SimpleITK as sitk

    from LNStagingLib.cli import main as cli_main

    ct, pet, results = make_case()
    results.write(tmp_path / "run")
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(pet, str(tmp_path / "pet.nii.gz"))
    code = cli_main(["review", str(tmp_path / "run"), "--ct", str(tmp_path / "ct.nii.gz"), "--pet",
                     str(tmp_path / "pet.nii.gz"), "--rescore-model", "demo-cls-rescorer", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "demo-cls-rescorer is neither a model file nor a cls model" in err
    assert "demo-cls-rescore" in err and "Traceback" not in err


def _patient_report(source: str) -> dict:
    """An evaluate-patient JSON as `lnstaging evaluate patient` writes it: 9 positive and 3 negative patients (the
    demo cohort's test set), AUC 20/27 (7 of the 27 positive-negative pairs misordered)."""
    labels = [1] * 9 + [0] * 3
    probabilities = [0.9, 0.8, 0.75, 0.7, 0.65, 0.6, 0.3, 0.2, 0.1, 0.62, 0.4, 0.05]
    metric = lambda value, low, high: {"value": value, "low": low, "high": high, "level": 0.95}  # noqa: E731
    return {"n_patients": 12, "n_positive": 9, "threshold": 0.5, "bootstrap": {"n": 1000, "seed": 0, "level": 0.95},
            "metrics": {"balanced_accuracy": metric(0.667, 0.4, 0.9), "auc": metric(20 / 27, 0.35, 1.0),
                        "sensitivity": metric(6 / 9, 0.33, 1.0), "specificity": metric(2 / 3, 0.0, 1.0),
                        "accuracy": metric(8 / 12, 0.4, 0.9)},
            "patients": [{"case": f"case{i:03d}", "label": y, "probability": p, "ln_volume_mm3": 100.0 * (i % 2)}
                         for i, (y, p) in enumerate(zip(labels, probabilities))],
            "ln_volume_source": source}


def test_a_patient_model_is_installed_only_with_pipeline_volume_metrics(tmp_path):
    """Issue 29: the demo-patient card quoted an AUC measured with gtv_ln.nii.gz, which gives the phantom's label
    away, of a model trained on gtv_ln volumes. An evaluation with gtv_ln, a model trained on gtv_ln volumes, or one
    trained on predicted volumes that were not cross-fitted are refused; the cross-fitted model's pipeline-volume
    figures are quoted with their intervals, class counts and the note on its 3 negative patients."""
    from LNStagingLib.evaluation.compare import delong_auc_ci
    from LNStagingLib.models.patient import PatientMetastasisNet, preset

    work, resources = tmp_path / "work", tmp_path / "Resources"
    run = work / "patient_predicted"
    run.mkdir(parents=True)
    resources.mkdir()
    shutil.copyfile(ROOT / "Resources" / "Models.schema.json", resources / "Models.schema.json")
    torch.manual_seed(1)
    net = PatientMetastasisNet(preset("tiny"))

    def install(training_source: str, report: dict):
        save_checkpoint(run / "patient_model.pt", net, net.config,
                        training_data={**TRAINING_DATA, "ln_volume_source": training_source})
        (run / "eval_patient_test.json").write_text(json.dumps(report))
        return load_script().install_models(work, resources, only=["demo-patient"])

    with pytest.raises(SystemExit, match="was measured with gtv_ln.nii.gz"):
        install("train_volumes.csv (predicted)", _patient_report("gtv_ln.nii.gz"))
    with pytest.raises(SystemExit, match="not trained on cross-fitted volumes"):
        install("gtv_ln.nii.gz (ground truth)", _patient_report("test_volumes.csv"))
    with pytest.raises(SystemExit, match="not trained on cross-fitted volumes"):  # predicted, but no cross_fit/
        install("train_volumes.csv (predicted)", _patient_report("test_volumes.csv"))
    assert not (resources / "models" / "demo-patient.pt").exists()
    (run / "cross_fit").mkdir()
    report = _patient_report("test_volumes.csv")
    entries = install("train_volumes.csv (predicted)", report)
    entry = next(e for e in entries if e["id"] == "demo-patient")
    _, delong_low, delong_high = delong_auc_ci([p["label"] for p in report["patients"]],
                                               [p["probability"] for p in report["patients"]])
    assert entry["metrics"]["auc"] == pytest.approx(20 / 27) and entry["metrics"]["auc_95ci_bootstrap"] == [0.35, 1.0]
    assert entry["metrics"]["auc_95ci_delong"] == pytest.approx([delong_low, delong_high])
    assert entry["metrics"]["test_patients"] == {"positive": 9, "negative": 3}
    assert entry["metrics"]["ln_volume_source"] == "test_volumes.csv"
    assert entry["sha256"] == sha256_of(resources / "models" / "demo-patient.pt")
    card = (resources / "models" / "demo-patient.md").read_text()
    assert "12 (9 positive, 3 negative)" in card and "AUC 0.741 [0.350, 1.000]" in card
    assert f"DeLong 95% CI [{delong_low:.3f}, {delong_high:.3f}]" in card
    assert "is > 0 for 4 of the 9 positive and 2 of the 3 negative test patients" in card  # odd case numbers
    assert "rest on 3 negative patients (fewer than 10)" in card and "do not show how well" in card
    assert "LN volume of the test patients: the pipeline's (test_volumes.csv" in card
    assert "LN volume of the training patients: cross-fitted" in card
    assert "train_demo_models.py --work WORK --only patient_predicted`" in card
    assert "gtv_ln.nii.gz (ground truth)" not in card


def test_every_demo_model_is_a_run_of_the_training_script_and_demo_patient_is_cross_fitted():
    """Each bundled model's checkpoint and evaluation are what scripts/train_demo_models.py's run writes, so the
    card's `--only RUN` reproduces it; demo-patient is the run trained on cross-fitted volumes and tested on the
    volumes demo-seg's own run (seg_attention) predicts, which `--only patient_predicted` trains first."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from train_demo_models import experiments, with_prerequisites

    work = Path("/w")
    specs = experiments(work)
    models = load_script().DEMO_MODELS
    for model_id, (_, checkpoint, evaluation, _, _) in models.items():
        run = checkpoint.split("/")[0]
        assert specs[run]["result"] == str(work / evaluation), model_id
        assert str(work / checkpoint) in specs[run]["evaluate"], model_id
    assert models["demo-patient"][1] == "patient_predicted/patient_model.pt"
    patient = specs["patient_predicted"]
    cross_fit, test_volumes = ([argv for argv in patient["prepare"] if ("--cross-fit" in argv) == fit][0]
                               for fit in (True, False))
    assert cross_fit[cross_fit.index("--cross-fit") + 1] == "4"
    assert patient["train"][patient["train"].index("--ln-volumes") + 1] == cross_fit[cross_fit.index("--out") + 1]
    assert f"seg={work}/{models['demo-seg'][1]},identification={work}/{models['demo-identification'][1]}" \
        in test_volumes
    assert patient["evaluate"][patient["evaluate"].index("--ln-volumes") + 1] \
        == test_volumes[test_volumes.index("--out") + 1]
    assert with_prerequisites(["patient_predicted"], specs) == ["seg_attention", "patient_predicted"]
