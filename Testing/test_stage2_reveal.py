"""The review-state GNNp (issue 19) learns to use revealed labels: a reviewer's decisions re-score the others.

Synthetic patients as in test_stage2_relational.py, but the patient's disease status is carried by f1 under so much
noise that the graph cannot recover it from the features alone. A revealed label settles it (a revealed positive
means "diseased"; a revealed negative with f0 > 0 means "healthy"), so on held-out patients the same trained head
must rank the still-hidden candidates better with some labels revealed than with none.
"""

import numpy as np
import pytest
import torch

from relational_patients import F_DIM
from relational_patients import patients as relational_patients

from LNStagingLib.errors import ModelError
from LNStagingLib.evaluation.metrics import roc_auc
from LNStagingLib.models.gnn import GNNConfig, GNNp
from LNStagingLib.models.stage2 import Stage2Model, stage2_config
from LNStagingLib.training.cls import reveal_labels

NOISE = 10.0


def patients(n_patients: int, seed: int):
    return relational_patients(n_patients, seed, NOISE)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    config = GNNConfig(f_dim=F_DIM, use_priors=False, h_dim=16, msg_dim=16, aggregation="mean", review_state=True)
    head = GNNp(config)
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)
    train = patients(200, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        f, y = train[rng.integers(len(train))]
        states, hidden = reveal_labels(rng, y.numpy())
        logits = head(f, review=torch.from_numpy(states))
        hidden = torch.from_numpy(hidden)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[hidden], y[hidden])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head.eval()


def test_revealed_labels_improve_the_hidden_candidates(trained):
    test = patients(100, seed=1)
    # The same 3 nodes are drawn (rng seed 7) whether revealed or not: compare on exactly the same hidden nodes.
    none = hidden_auc_same_nodes(trained, test, reveal=False)
    three = hidden_auc_same_nodes(trained, test, reveal=True)
    # Measured (torch 2.13, CPU): AUC 0.862 with nothing revealed, 0.959 with 3 labels revealed.
    assert three > none + 0.05, (none, three)


def hidden_auc_same_nodes(head, test, reveal: bool) -> float:
    rng = np.random.default_rng(7)
    scores, labels = [], []
    with torch.no_grad():
        for f, y in test:
            shown = rng.choice(len(y), size=3, replace=False)
            states = -np.ones(len(y), dtype=np.int64)
            if reveal:
                states[shown] = y.numpy()[shown].astype(np.int64)
            hidden = np.ones(len(y), dtype=bool)
            hidden[shown] = False
            scores.append(head(f, review=torch.from_numpy(states)).numpy()[hidden])
            labels.append(y.numpy()[hidden])
    return roc_auc(np.concatenate(labels), np.concatenate(scores))


def test_unknown_everywhere_is_the_default(trained):
    f, _ = patients(1, seed=3)[0]
    with torch.no_grad():
        assert torch.equal(trained(f), trained(f, review=-torch.ones(len(f), dtype=torch.long)))


def test_reveal_labels_keeps_at_least_one_hidden():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 12):
        labels = rng.integers(0, 2, n)
        for _ in range(50):
            states, hidden = reveal_labels(rng, labels)
            assert hidden.any() and (~hidden).sum() <= n // 2
            assert np.array_equal(states[~hidden], labels[~hidden]) and (states[hidden] == -1).all()


def test_review_state_is_off_for_existing_models_and_only_for_gnnp():
    plain = Stage2Model(stage2_config("tiny", head="gnnp", use_priors=False))
    assert plain.config.review_state is False
    f = torch.randn(5, plain.config.gnn_config().f_dim)
    with pytest.raises(ModelError):
        plain.head_logits(torch.zeros(5), f, None, review=torch.zeros(5))
    with pytest.raises(ModelError):
        stage2_config("tiny", head="cnn", use_priors=False, review_state=True)
    variant = Stage2Model(stage2_config("tiny", head="gnnp", use_priors=False, review_state=True))
    out = variant.head_logits(torch.zeros(5), f, None, review=torch.tensor([1, 0, -1, -1, -1]))
    assert out.shape == (5,)


@pytest.mark.slow
def test_train_cls_reveal_labels_and_the_rescore_evaluation(tmp_path):
    """CLI smoke on a 3-case phantom cohort: the checkpoint says review_state; the evaluation script runs on it."""
    import importlib.util
    import json
    from pathlib import Path

    from LNStagingLib.cli import main as cli
    from LNStagingLib.models import stage2  # noqa: F401
    from LNStagingLib.models.checkpoint import load_model
    from LNStagingLib.phantom.cohort import write_cohort

    cohort = tmp_path / "cohort"
    write_cohort(cohort, seed=3, cases=3, size="small", folds=2, test_fraction=0.34, direction="mixed",
                 relations="strong")
    common = ["train", "cls", "--data", str(cohort), "--config", "tiny", "--epochs", "1"]
    assert cli(common + ["--out", str(tmp_path / "cnn"), "--head", "cnn"]) == 0
    assert cli(common + ["--out", str(tmp_path / "bad"), "--head", "cnn", "--reveal-labels"]) == 2
    assert cli(common + ["--out", str(tmp_path / "reveal"), "--head", "gnnp", "--reveal-labels"]) == 0
    _, config, payload = load_model(tmp_path / "reveal" / "cls_model.pt")
    assert config.review_state and config.decision_channel and payload["training_data"]["reveal_labels"] is True
    val = payload["metrics"]["val"]  # the epoch is chosen on the ordinary and the pending (re-scored) mFROC
    assert val["selection"] == pytest.approx((val["mFROC"] + val["pending_mFROC"]) / 2)
    # --freeze-cnn: the head alone is trained; the CNN is the --init-cnn one, weights and BatchNorm statistics
    assert cli(common + ["--out", str(tmp_path / "nofrozen"), "--head", "gnnp", "--freeze-cnn"]) == 2
    assert cli(common + ["--out", str(tmp_path / "frozen"), "--head", "gnnp", "--reveal-labels", "--freeze-cnn",
                         "--init-cnn", str(tmp_path / "cnn" / "cls_model.pt")]) == 0
    frozen, _, payload = load_model(tmp_path / "frozen" / "cls_model.pt")
    cnn, _, _ = load_model(tmp_path / "cnn" / "cls_model.pt")
    kept = {k: v for k, v in cnn.cnn.state_dict().items() if not k.startswith("classifier")}
    assert kept and all(torch.equal(frozen.cnn.state_dict()[k], v) for k, v in kept.items())
    assert payload["training_data"]["freeze_cnn"] is True
    spec = importlib.util.spec_from_file_location("rescore_evaluation",
                                                  Path(__file__).parents[1] / "scripts" / "rescore_evaluation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.evaluate(cohort, tmp_path / "reveal" / "cls_model.pt", tmp_path / "cnn" / "cls_model.pt", ks=(1,))
    row = report["k"]["1"]
    assert report["patients"] == 1 and {"rescored", "nothing", "baseline", "regression", "rescored_minus_nothing",
                                        "regression_minus_baseline"} <= set(row)
    assert 0.0 <= row["regression"]["mFROC"] <= 1.0
    json.dumps(report)


def test_rescore_reference_regression_reads_only_the_decisions():
    """The reference regression's decision features: nearness and similarity to the nearest accepted / rejected
    candidate, zero when no decision of that kind exists (so nothing decided = the CNN + priors alone)."""
    import importlib.util
    from pathlib import Path

    import numpy as np

    spec = importlib.util.spec_from_file_location("rescore_evaluation",
                                                  Path(__file__).parents[1] / "scripts" / "rescore_evaluation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    xyz = np.array([[0.0, 0, 0], [40.0, 0, 0], [0.0, 80, 0]])
    f = np.array([[1.0, 0], [1.0, 0], [0.0, 1]])
    features = module.nearest_decision_features(xyz, f, np.array([1, -1, 0]))
    assert np.allclose(features[1], [np.exp(-1), 1.0, np.exp(-np.hypot(40, 80) / 40), 0.0, 1, 1])
    assert np.allclose(features[0, [0, 1]], [1.0, 1.0]) and np.allclose(features[2, [2, 3]], [1.0, 1.0])
    assert not module.nearest_decision_features(xyz, f, np.array([-1, -1, -1])).any()


def phenotype_patients(n_patients: int, seed: int, n: int = 16, dim: int = 8):
    """Each patient's positives look alike (around one direction) and so do its negatives (around another): without
    a decision the two groups are symmetric, so which one is metastatic can only come from a reviewer's decision."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_patients):
        centres = rng.normal(size=(2, dim))
        y = np.zeros(n, dtype=np.float32)
        y[: n // 2] = 1
        f = np.abs(centres[(1 - y).astype(int)] + 0.3 * rng.normal(size=(n, dim)))
        order = rng.permutation(n)
        out.append((torch.tensor(f[order], dtype=torch.float32), torch.tensor(y[order])))
    return out


def test_decision_channel_learns_what_an_accepted_node_looks_like():
    """The explicit-feature message (models/gnn.py): one accepted or rejected node tells the hidden ones apart."""
    torch.manual_seed(0)
    config = GNNConfig(f_dim=8, use_priors=False, h_dim=16, msg_dim=16, aggregation="mean", review_state=True,
                       decision_channel=True)
    head = GNNp(config)
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)
    train, rng = phenotype_patients(100, seed=0), np.random.default_rng(1)
    for _ in range(600):
        f, y = train[rng.integers(len(train))]
        states, hidden = reveal_labels(rng, y.numpy())
        logits = head(f, review=torch.from_numpy(states))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[torch.from_numpy(hidden)],
                                                                    y[torch.from_numpy(hidden)])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    head.eval()
    test = phenotype_patients(50, seed=2)
    none = hidden_auc_same_nodes(head, test, reveal=False)
    three = hidden_auc_same_nodes(head, test, reveal=True)
    assert none < 0.65 and three > 0.9, (none, three)  # the groups are symmetric until a decision names one


def test_decision_features_and_no_message_without_decisions():
    from LNStagingLib.models.gnn import DECISION_FEATURES, decision_features

    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    positions = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 2, 0]])
    features = decision_features(f, positions, torch.tensor([1, -1, 0]))
    assert features.shape == (3, 2, len(DECISION_FEATURES))  # every node, each of the 2 decided nodes
    assert torch.allclose(features[1, 0], torch.tensor([1.0, float(np.exp(-1)), 1, 0, 1]), atol=1e-5)
    assert torch.allclose(features[1, 1], torch.tensor([0.0, float(np.exp(-np.sqrt(5))), 0, 1, 0]), atol=1e-5)
    head = GNNp(GNNConfig(f_dim=2, use_priors=False, h_dim=4, msg_dim=4, review_state=True, decision_channel=True))
    assert not head.decision_messages(f, None, -torch.ones(3, dtype=torch.long)).any()
    with pytest.raises(ValueError):
        GNNp(GNNConfig(f_dim=2, use_priors=False, decision_channel=True))
    with pytest.raises(ModelError):
        stage2_config("tiny", head="gnnp", use_priors=False, decision_channel=True)


def test_pending_detections_leave_out_what_a_decision_settled():
    from LNStagingLib.evaluation.froc import pending_detections

    probabilities = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels, node_ids = np.array([1, 1, 0, 1, 0]), np.array([3, 3, 0, 4, 0])
    revealed = np.array([True, False, True, False, False])
    detections, left = pending_detections(probabilities, labels, node_ids, revealed, n_lesions=2)
    # lesion 3 was found by the accepted candidate 0: its other candidate (1) is left out; lesion 4 is still to find
    assert left == 1 and len(detections) == 2
