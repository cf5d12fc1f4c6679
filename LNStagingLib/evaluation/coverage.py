"""How often a nominal 95% AUC interval covers the true AUC on a small test set (simulated).

docs/RESULTS.md compares patient models on 12 test patients (9 positive, 3 negative). Both intervals it uses
(DeLong's normal interval, evaluation/compare.py; the 1000-resample patient bootstrap, evaluation/bootstrap.py)
are large-sample approximations; on so few patients they cover less than they say. This measures by how much: test
sets are drawn from a binormal model (negatives N(0, 1), positives N(d, 1), d = sqrt(2) * Phi^-1(AUC), so the true
AUC is known), each interval is computed as the project computes it, and the share that contains the true AUC is
the coverage.
"""

from __future__ import annotations

import math

import numpy as np

#: A conclusion about patients that rests on fewer negative test patients than this says so (RESULTS.md's rows,
#: the model cards): on so few, a nominal 95% interval covers much less (auc_interval_coverage).
FEW_NEGATIVES = 10


def _bootstrap_auc_interval(labels: np.ndarray, scores: np.ndarray, n_boot: int, rng, level: float) -> tuple:
    """Percentile interval of the AUC over patient resamples (resamples with one class left out), as
    evaluation.bootstrap.bootstrap_ci(roc_auc) computes it; vectorised over the resamples."""
    n = len(labels)
    counts = np.zeros((n_boot, n))
    idx = rng.integers(0, n, size=(n_boot, n))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    pos, neg = labels.astype(bool), ~labels.astype(bool)
    wins = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    pair = wins * pos[:, None] * neg[None, :]
    numerator = np.einsum("bi,ij,bj->b", counts, pair, counts)
    denominator = counts[:, pos].sum(1) * counts[:, neg].sum(1)
    valid = denominator > 0
    aucs = numerator[valid] / denominator[valid]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(aucs, [tail, 100 - tail])
    return float(low), float(high)


def auc_interval_coverage(n_positive: int, n_negative: int, true_auc: float = 0.75, n_sim: int = 1000,
                          n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Share of ``n_sim`` simulated test sets whose DeLong / bootstrap interval contains ``true_auc``."""
    from scipy.stats import norm

    from .compare import delong_auc_ci

    rng = np.random.default_rng(seed)
    shift = math.sqrt(2.0) * norm.ppf(true_auc)
    labels = np.r_[np.ones(n_positive, int), np.zeros(n_negative, int)]
    covered = {"delong": 0, "bootstrap": 0}
    for _ in range(n_sim):
        scores = np.r_[rng.normal(shift, 1.0, n_positive), rng.normal(0.0, 1.0, n_negative)]
        _, low, high = delong_auc_ci(labels, scores, level)
        covered["delong"] += bool(low <= true_auc <= high)
        low, high = _bootstrap_auc_interval(labels, scores, n_boot, rng, level)
        covered["bootstrap"] += bool(low <= true_auc <= high)
    return {"n_positive": n_positive, "n_negative": n_negative, "true_auc": true_auc, "n_sim": n_sim,
            "n_boot": n_boot, "seed": seed, "level": level,
            "coverage": {k: v / n_sim for k, v in covered.items()}}
