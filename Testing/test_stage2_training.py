"""`lnstaging train cls` / `evaluate cls` smoke on a 3-case phantom cohort (tiny network): checkpoints, resume, init."""

import json

import numpy as np
import pytest
import torch

from LNStagingLib.cli import main as cli
from LNStagingLib.models.checkpoint import load_checkpoint, load_model
from LNStagingLib.phantom.cohort import write_cohort
from LNStagingLib.training.cls import init_cnn_from


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2") / "cohort"
    write_cohort(root, seed=3, cases=3, size="small", folds=2, test_fraction=0.34, direction="mixed")
    return root


@pytest.fixture(scope="module")
def cnn_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("s2") / "cnn"
    assert cli(["train", "cls", "--data", str(cohort), "--out", str(out), "--config", "tiny", "--head", "cnn",
                "--epochs", "1", "--no-priors"]) == 0
    return out


def test_train_writes_a_loadable_checkpoint_with_description(cnn_run):
    from LNStagingLib.models import stage2  # noqa: F401

    model, config, payload = load_model(cnn_run / "cls_model.pt")
    assert config.head == "cnn" and not config.use_priors and config.use_pet
    assert payload["training_data"]["train_cases"] == 1 and payload["training_data"]["val_cases"] == 1
    assert "mFROC" in payload["metrics"]["val"]
    sha = (cnn_run / "cls_model.pt.sha256").read_text().split()[0]
    load_checkpoint(cnn_run / "cls_model.pt", expected_sha256=sha)
    assert list((cnn_run / "cache").glob("*.npz"))


def test_resume_continues_exactly_like_an_uninterrupted_run(cohort, cnn_run, tmp_path):
    common = ["train", "cls", "--data", str(cohort), "--config", "tiny", "--head", "gnnp", "--seed", "5",
              "--init-cnn", str(cnn_run / "cls_model.pt")]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli(common + ["--out", str(straight), "--epochs", "2"]) == 0
    assert cli(common + ["--out", str(resumed), "--epochs", "1"]) == 0
    assert cli(common + ["--out", str(resumed), "--epochs", "2", "--resume"]) == 0
    a = load_checkpoint(straight / "cls_last.pt")
    b = load_checkpoint(resumed / "cls_last.pt")
    assert a["extra"]["epoch"] == b["extra"]["epoch"] == 1
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    assert a["training_data"]["init_cnn_tensors"] > 0


def test_init_cnn_first_layer_only(cnn_run):
    from LNStagingLib.models.stage2 import Stage2Model, stage2_config

    torch.manual_seed(11)
    model = Stage2Model(stage2_config("tiny", head="gnnp", use_priors=False))
    before = {k: v.clone() for k, v in model.cnn.state_dict().items()}
    copied = init_cnn_from(model, str(cnn_run / "cls_model.pt"), "first")
    source = load_checkpoint(cnn_run / "cls_model.pt")["state_dict"]
    assert copied and all(k.startswith("stem.") for k in copied)
    assert torch.equal(model.cnn.stem[0].weight, source["cnn.stem.0.weight"])
    assert torch.equal(model.cnn.stages[0][0].conv1.weight, before["stages.0.0.conv1.weight"])


def test_evaluate_cls_reports_froc_and_f1(cohort, cnn_run, tmp_path):
    out = tmp_path / "eval.json"
    assert cli(["evaluate", "cls", "--data", str(cohort), "--model", str(cnn_run / "cls_model.pt"),
                "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    m = report["metrics"]
    assert set(["mFROC", "sens@2FP", "sens@6FP", "F1@0.5", "best_F1"]) <= set(m)
    assert 0.0 <= m["mFROC"] <= 1.0 and m["patients"] == 1
    low, high = m["mFROC_95ci"]
    assert low <= m["mFROC"] <= high
    for case_id, truth in report["truth"].items():  # what a paired comparison of two models needs
        assert len(truth["labels"]) == len(truth["node_ids"]) == len(report["probabilities"][case_id])
    probabilities = np.concatenate([np.asarray(v) for v in report["probabilities"].values()])
    assert len(probabilities) == m["candidates"] and np.all((probabilities >= 0) & (probabilities <= 1))


def test_roi_gap_pools_the_candidates_own_mask_by_default(cohort, tmp_path):
    """Default --roi label: a candidate with a node mask gets that mask as its ROI, a point candidate a sphere; the
    phantom's look-alikes are points while its nodes have masks, so training warns about the imbalance."""
    from dataclasses import replace

    from LNStagingLib.dataset.format import read_dataset
    from LNStagingLib.inference.case_inputs import load_case_candidates
    from LNStagingLib.models import stage2  # noqa: F401
    from LNStagingLib.training.cls import mask_class_imbalance

    out = tmp_path / "label_roi"
    assert cli(["train", "cls", "--data", str(cohort), "--out", str(out), "--config", "tiny", "--head", "cnn",
                "--epochs", "1", "--no-priors"]) == 0
    _, config, _ = load_model(out / "cls_model.pt")
    assert config.roi_source == "label"
    dataset = read_dataset(cohort)
    cases = {case_id: load_case_candidates(dataset, case_id, config) for case_id in dataset.case_ids}
    case_id = next(c for c, loaded in cases.items() if loaded.labels.any())  # a case with positives and negatives
    own = cases[case_id]
    spheres = load_case_candidates(dataset, case_id, replace(config, roi_source="sphere"))
    assert own.has_mask.any() and not own.has_mask.all() and not spheres.has_mask.any()
    assert np.array_equal(own.has_mask, own.node_ids > 0)
    differs = [not np.array_equal(own.masks[i], spheres.masks[i]) for i in range(len(own.labels))]
    assert all(differs[i] for i in np.flatnonzero(own.has_mask))
    assert not any(differs[i] for i in np.flatnonzero(~own.has_mask))
    assert mask_class_imbalance([own]) and not mask_class_imbalance([spheres])
