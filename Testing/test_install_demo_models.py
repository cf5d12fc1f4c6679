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


def test_a_patient_model_is_installed_only_with_pipeline_volume_metrics(tmp_path):
    """Issue 29: the demo-patient card quoted an AUC measured with gtv_ln.nii.gz, which gives the phantom's label
    away. Such an evaluation is refused; one with the pipeline's volumes is quoted and its source named."""
    from LNStagingLib.models.patient import PatientMetastasisNet, preset

    work, resources = tmp_path / "work", tmp_path / "Resources"
    (work / "patient").mkdir(parents=True)
    resources.mkdir()
    shutil.copyfile(ROOT / "Resources" / "Models.schema.json", resources / "Models.schema.json")
    torch.manual_seed(1)
    net = PatientMetastasisNet(preset("tiny"))
    save_checkpoint(work / "patient" / "patient_model.pt", net, net.config, training_data=TRAINING_DATA)
    report = {"metrics": {"auc": {"value": 0.74}}, "ln_volume_source": "gtv_ln.nii.gz"}
    (work / "patient" / "eval_patient_test.json").write_text(json.dumps(report))
    with pytest.raises(SystemExit, match="gtv_ln.nii.gz"):
        load_script().install_models(work, resources, only=["demo-patient"])
    report = {"metrics": {"auc": {"value": 0.185}}, "ln_volume_source": "test_volumes.csv"}
    (work / "patient" / "eval_patient_test.json").write_text(json.dumps(report))
    entries = load_script().install_models(work, resources, only=["demo-patient"])
    assert [e["metrics"]["auc"] for e in entries if e["id"] == "demo-patient"] == [0.185]
    card = (resources / "models" / "demo-patient.md").read_text()
    assert "LN volume of the test patients: the pipeline's (test_volumes.csv" in card
