"""evaluation/coverage.py: the simulated coverage of the project's nominal 95% AUC intervals, quoted by
docs/RESULTS.md for its 12-patient test set (9 positive, 3 negative)."""

import numpy as np

from LNStagingLib.evaluation.bootstrap import bootstrap_ci
from LNStagingLib.evaluation.coverage import _bootstrap_auc_interval, auc_interval_coverage
from LNStagingLib.evaluation.metrics import roc_auc


def test_vectorised_bootstrap_is_the_projects_bootstrap():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(9, int), np.zeros(3, int)]
    scores = rng.normal(0, 1, 12) + labels
    ours = _bootstrap_auc_interval(labels, scores, 1000, np.random.default_rng(0), 0.95)
    theirs = bootstrap_ci(lambda idx: roc_auc(labels[idx], scores[idx]), 12, 1000, seed=0)
    assert ours == (theirs.low, theirs.high)


def test_coverage_is_nominal_on_a_large_test_set_and_short_on_nine_against_three():
    large = auc_interval_coverage(40, 40, 0.75, n_sim=300, n_boot=500)["coverage"]
    assert 0.91 <= large["delong"] <= 0.98 and 0.91 <= large["bootstrap"] <= 0.98
    small = auc_interval_coverage(9, 3, 0.75, n_sim=300, n_boot=500)["coverage"]
    assert small["delong"] < 0.9 and small["bootstrap"] < 0.92
