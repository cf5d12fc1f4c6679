"""The graph heads learn what only a patient's other candidates tell (paper 1's premise), the instance head cannot.

Synthetic patients: each candidate has a feature f0 that decides its label only when the patient is "diseased",
and a feature f1 that carries the patient's disease status under heavy noise. A head that sees one candidate
at a time can only guess the status from its own noisy f1; a head that averages messages over all the patient's
candidates recovers it. So GNNp (eq. 6) and GNNb (eq. 4) must beat the instance head (the CNN + prior row) on
held-out patients. This exercises the message passing itself, independent of any image or CNN.
"""

import numpy as np
import pytest
import torch

from relational_patients import F_DIM
from relational_patients import patients as relational_patients

from LNStagingLib.evaluation.metrics import roc_auc
from LNStagingLib.models.gnn import GNNb, GNNConfig, GNNp, InstanceHead

NOISE = 1.5


def patients(n_patients: int, seed: int):
    return relational_patients(n_patients, seed, NOISE)


def train_and_score(head_class, train, test, steps: int = 600) -> float:
    torch.manual_seed(0)
    config = GNNConfig(f_dim=F_DIM, use_priors=False, h_dim=16, msg_dim=16, aggregation="mean", gat_heads=2)
    head = head_class(config)
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        f, y = train[rng.integers(len(train))]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(f), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        scores = np.concatenate([head(f).numpy() for f, _ in test])
    return roc_auc(np.concatenate([y.numpy() for _, y in test]), scores)


@pytest.fixture(scope="module")
def cohort():
    return patients(200, seed=0), patients(100, seed=1)


@pytest.fixture(scope="module")
def instance_auc(cohort):
    return train_and_score(InstanceHead, *cohort)


@pytest.mark.parametrize("graph_head", [GNNp, GNNb])
def test_graph_head_uses_the_other_candidates(cohort, instance_auc, graph_head):
    graph_auc = train_and_score(graph_head, *cohort)
    # Measured (torch 2.13, CPU): instance head 0.885, GNNp 0.963, GNNb 0.955 on the held-out patients.
    assert instance_auc < 0.92
    assert graph_auc > instance_auc + 0.05, (graph_head.__name__, graph_auc, instance_auc)
