"""DeLong's test for two correlated AUCs and the paired permutation test for mFROC (evaluation/compare.py)."""

import numpy as np
import pytest

from LNStagingLib.evaluation.compare import delong_auc_ci, delong_test, paired_mfroc_test
from LNStagingLib.evaluation.metrics import roc_auc


def naive_delong(y, a, b):
    """The 1988 formulas written out: psi over every positive-negative pair, then the covariance matrices."""
    y = np.asarray(y, bool)

    def placements(s):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = placements(np.asarray(a, float)), placements(np.asarray(b, float))
    m, n = y.sum(), (~y).sum()
    s10, s01 = np.cov([v10a, v10b]), np.cov([v01a, v01b])
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return auc_a, auc_b, np.sqrt(var)


def test_delong_equals_the_written_out_formulas_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(40) < 0.4
    a = np.round(y + rng.normal(0, 1, 40), 1)  # rounded: ties within and across classes
    b = np.round(0.5 * y + rng.normal(0, 1, 40), 1)
    result = delong_test(y.astype(int), a, b)
    auc_a, auc_b, se = naive_delong(y, a, b)
    assert result.auc_a == pytest.approx(auc_a) and result.auc_b == pytest.approx(auc_b)
    assert result.auc_a == pytest.approx(roc_auc(y.astype(int), a))
    assert result.standard_error == pytest.approx(se)
    assert result.ci95[0] < result.difference < result.ci95[1]


def test_identical_scores_differ_by_nothing_and_a_much_better_model_is_detected():
    rng = np.random.default_rng(1)
    y = (rng.random(60) < 0.5).astype(int)
    noise = rng.normal(0, 1, 60)
    same = delong_test(y, noise, noise)
    assert same.difference == 0 and same.p_value == 1.0
    better = delong_test(y, y * 2.0 + noise, noise)
    assert better.difference > 0.3 and better.p_value < 0.001


def test_delong_p_values_hold_their_level_under_the_null():
    """Two equally good, partly correlated scores: about 5 % of tests reject at 0.05."""
    rng = np.random.default_rng(2)
    rejections = 0
    for _ in range(300):
        y = (rng.random(50) < 0.4).astype(int)
        shared = rng.normal(0, 1, 50)
        a = y + shared + rng.normal(0, 1, 50)
        b = y + shared + rng.normal(0, 1, 50)
        if (y.sum() >= 2) and ((1 - y).sum() >= 2):
            rejections += delong_test(y, a, b).p_value < 0.05
    assert 0.01 <= rejections / 300 <= 0.10


def test_auc_interval_and_small_samples_are_refused():
    y = [0, 0, 0, 1, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.3, 0.9]
    auc, low, high = delong_auc_ci(y, s)
    assert auc == pytest.approx(roc_auc(y, s)) and 0 <= low < auc < high <= 1
    with pytest.raises(ValueError, match="2 positive"):
        delong_test([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3], [0.5, 0.5, 0.5, 0.5])


def _detections(rng, n_patients, good):
    detections, lesions = [], []
    for p in range(n_patients):
        n_nodes = 2
        rows = []
        for node in range(1, n_nodes + 1):
            rows.append((float(rng.uniform(0.6, 1.0) if good else rng.uniform(0, 1)), (p, node)))
        rows += [(float(rng.uniform(0, 0.5) if good else rng.uniform(0, 1)), None) for _ in range(6)]
        detections.append(rows)
        lesions.append(n_nodes)
    return detections, lesions


def test_paired_mfroc_test():
    rng = np.random.default_rng(3)
    good, lesions = _detections(rng, 20, True)
    poor, _ = _detections(rng, 20, False)
    same = paired_mfroc_test(good, good, lesions, n_permutations=200, n_boot=200)
    assert same.difference == 0 and same.p_value == 1.0
    result = paired_mfroc_test(good, poor, lesions, n_permutations=200, n_boot=200)
    assert result.difference > 0.2 and result.p_value < 0.01 and result.ci95[0] > 0
    flipped = paired_mfroc_test(poor, good, lesions, n_permutations=200, n_boot=200)
    assert flipped.difference == pytest.approx(-result.difference) and flipped.p_value < 0.01
