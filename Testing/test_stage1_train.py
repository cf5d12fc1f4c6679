"""`lnstaging train seg` and `lnstaging evaluate seg` end to end on a small phantom cohort (tiny network)."""

import json

import pytest
import torch

from stage1_support import one_thread  # noqa: F401  (autouse fixture)

from LNStagingLib.cli import main as cli
from LNStagingLib.dataset.format import PDAC20_LABELS, write_description
from LNStagingLib.models.checkpoint import load_model, sha256_of
from LNStagingLib.phantom.case import generate_case
from LNStagingLib.phantom.cohort import write_case

SEEDS = {"p2": 2, "p5": 5, "p3": 3}  # seeds whose phantoms hold positive and negative nodes (3/14, 9/10, 3/12)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    for case_id, seed in SEEDS.items():
        write_case(generate_case(seed, size=(64, 64, 40), direction="oblique"), root / "cases" / case_id)
    write_description(root, name="stage1-smoke", case_ids=list(SEEDS), organ_labels=PDAC20_LABELS,
                      organ_mapping="pdac20", folds={"p2": 0, "p5": 1}, test=["p3"])
    return root


def test_train_resume_and_evaluate(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "seg", "--data", str(cohort), "--out", str(out), "--config", "tiny", "--epochs", "1",
                "--fold", "0", "--seed", "7"]) == 0
    seg, config, payload = load_model(out / "seg_model.pt", expected_sha256=(out / "seg_model.pt.sha256").read_text().split()[0])
    assert config.preset == "tiny" and config.use_attention
    assert payload["training_data"]["n_train"] == 1 and payload["training_data"]["target"] == "lymph_nodes"
    assert "p5" not in json.dumps(payload["training_data"])  # no case identifiers in the checkpoint
    assert "val_loss" in payload["metrics"] and payload["extra"]["train_config"]["seed"] == 7
    identifier, id_config, id_payload = load_model(out / "identifier.pt")
    assert id_payload["extra"]["initialised_from"] == "seg_model.pt" and id_config.features == config.features

    # resume to 2 epochs == training 2 epochs at once (same seed -> same patches, same weights)
    assert cli(["train", "seg", "--data", str(cohort), "--out", str(out), "--config", "tiny", "--epochs", "2",
                "--fold", "0", "--seed", "7", "--phase", "seg", "--resume"]) == 0
    straight = tmp_path / "straight"
    assert cli(["train", "seg", "--data", str(cohort), "--out", str(straight), "--config", "tiny", "--epochs", "2",
                "--fold", "0", "--seed", "7", "--phase", "seg"]) == 0
    resumed_sd = load_model(out / "seg_model.pt")[0].state_dict()
    straight_sd = load_model(straight / "seg_model.pt")[0].state_dict()
    assert all(torch.equal(resumed_sd[k], straight_sd[k]) for k in resumed_sd)
    assert (out / "seg_model.pt.sha256").read_text() == f"{sha256_of(out / 'seg_model.pt')}  seg_model.pt\n"

    metrics_path = tmp_path / "metrics.json"
    assert cli(["evaluate", "seg", "--data", str(cohort), "--model", str(out / "seg_model.pt"),
                "--identifier", str(out / "identifier.pt"), "--split", "test", "--out", str(metrics_path)]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert metrics["n_cases"] == 1 and set(metrics) >= {"class_agnostic", "positive", "negative"}
    for group in ("class_agnostic", "positive", "negative"):
        assert {"dice", "recall", "precision", "f_measure", "n_ref"} <= set(metrics[group])
    assert metrics["class_agnostic"]["n_ref"] > 0
    assert metrics["sliding_windows"]["run"] <= metrics["sliding_windows"]["windows"]


def test_user_errors_are_one_line(cohort, tmp_path, capsys):
    assert cli(["train", "seg", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) != 0
    assert cli(["train", "seg", "--data", str(cohort), "--out", str(tmp_path / "o"), "--fold", "5"]) != 0
    err = capsys.readouterr().err
    assert "Fold 5 does not exist" in err and "Traceback" not in err


def test_true_baseline_with_nnunet_normalisation_and_augmentation(cohort, tmp_path):
    """--no-attention trains without the attention map at all; nnU-Net's CT statistics of the training fold travel
    in the checkpoint and reach the identifier; --augment is recorded."""
    from LNStagingLib.models.seg_inputs import network_channels
    from LNStagingLib.training.seg import training_ct_statistics

    out = tmp_path / "baseline"
    assert cli(["train", "seg", "--data", str(cohort), "--out", str(out), "--config", "tiny", "--epochs", "1",
                "--fold", "0", "--no-attention", "--ct-normalisation", "nnunet", "--augment"]) == 0
    _, config, payload = load_model(out / "seg_model.pt")
    assert not config.use_attention and config.ct_normalisation == "nnunet"
    assert config.ct_statistics == pytest.approx(training_ct_statistics(cohort, 0))
    low, high, mean, sd = config.ct_statistics
    assert low < mean < high and sd > 0
    train_config = payload["extra"]["train_config"]
    assert train_config["augment"] and not train_config["informative_negatives"]
    _, id_config, _ = load_model(out / "identifier.pt")
    assert id_config.ct_statistics == config.ct_statistics
    channels = network_channels(config, generate_case(1, size=(64, 64, 40), direction="oblique").ct)
    assert channels.min() >= (low - mean) / sd - 1e-5 and channels.max() <= (high - mean) / sd + 1e-5
