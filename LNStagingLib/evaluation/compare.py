"""Is model A better than model B on the same patients? DeLong's test for two correlated ROC AUCs, and a paired
permutation test for the mFROC (paper 1's FROC summary).

DeLong, DeLong and Clarke-Pearson (Biometrics 1988): each AUC is the mean of placement values; the covariance of
the two AUCs follows from the placement values' covariances over positives and over negatives, so the difference
has a standard error without resampling. mFROC is not a mean over patients, so its paired test permutes instead:
under "no difference" the two models' detections of a patient are exchangeable, so swapping them per patient at
random gives the null distribution of the difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import norm, rankdata

from .froc import Detection, paired_mfroc_difference
from .froc import _mfroc_of as mfroc_of_patients


@dataclass(frozen=True)
class DeLongResult:
    auc_a: float
    auc_b: float
    difference: float  # auc_a - auc_b
    standard_error: float
    z: float
    p_value: float  # two-sided
    ci95: tuple[float, float]  # of the difference
    n_positive: int
    n_negative: int

    def as_dict(self) -> dict:
        return {**self.__dict__, "ci95": list(self.ci95)}


def _placements(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and the placement values V10 (one per positive) and V01 (one per negative), with mid-ranks for ties."""
    positives, negatives = score[y], score[~y]
    m, n = len(positives), len(negatives)
    all_ranks = rankdata(np.concatenate([positives, negatives]))
    pos_ranks, neg_ranks = rankdata(positives), rankdata(negatives)
    v10 = (all_ranks[:m] - pos_ranks) / n  # share of negatives below each positive (ties count 1/2)
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m  # share of positives above each negative
    return float(v10.mean()), v10, v01


def delong_test(y_true: Sequence[int], scores_a: Sequence[float], scores_b: Sequence[float]) -> DeLongResult:
    """DeLong's test of AUC(a) = AUC(b) for two scores of the same patients (two-sided)."""
    y = np.asarray(y_true)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError("Labels must be a 1-D sequence of 0 and 1.")
    y = y.astype(bool)
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    if a.shape != y.shape or b.shape != y.shape:
        raise ValueError("Both scores must be given for every patient.")
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least 2 positive and 2 negative patients (got {m} and {n}).")
    auc_a, v10_a, v01_a = _placements(y, a)
    auc_b, v10_b, v01_b = _placements(y, b)
    s10 = np.cov(np.stack([v10_a, v10_b]))
    s01 = np.cov(np.stack([v01_a, v01_b]))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    difference = auc_a - auc_b
    se = math.sqrt(max(variance, 0.0))
    if se == 0.0:
        z, p = (0.0, 1.0) if difference == 0 else (math.copysign(math.inf, difference), 0.0)
    else:
        z = difference / se
        p = float(2 * norm.sf(abs(z)))
    half = 1.959963984540054 * se
    return DeLongResult(auc_a, auc_b, difference, se, z, p, (difference - half, difference + half), m, n)


def delong_auc_ci(y_true: Sequence[int], scores: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, low, high): DeLong's standard error, normal interval clipped to [0, 1]."""
    y = np.asarray(y_true).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError(f"An AUC interval needs at least 2 positive and 2 negative patients (got {m} and {n}).")
    auc, v10, v01 = _placements(y, np.asarray(scores, float))
    se = math.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    half = norm.ppf(0.5 + level / 2) * se
    return auc, max(0.0, auc - half), min(1.0, auc + half)


@dataclass(frozen=True)
class PairedMfrocResult:
    mfroc_a: float
    mfroc_b: float
    difference: float  # mfroc_a - mfroc_b
    ci95: tuple[float, float]  # paired bootstrap over patients
    p_value: float  # two-sided, paired permutation
    n_patients: int
    n_permutations: int

    def as_dict(self) -> dict:
        return {**self.__dict__, "ci95": list(self.ci95)}


def paired_mfroc_test(detections_a: Sequence[Sequence[Detection]], detections_b: Sequence[Sequence[Detection]],
                      n_lesions: Sequence[int], n_permutations: int = 2000, n_boot: int = 1000,
                      seed: int = 0) -> PairedMfrocResult:
    """Two models' candidates on the same patients: the mFROC difference, its paired-bootstrap 95% CI, and a
    two-sided permutation p-value (each patient's two detection lists swapped with probability 1/2)."""
    if len(detections_a) != len(detections_b) or len(detections_a) != len(n_lesions):
        raise ValueError("Both models must be scored on the same patients.")
    everyone = np.arange(len(n_lesions))
    mfroc_a = mfroc_of_patients(detections_a, n_lesions, everyone)
    mfroc_b = mfroc_of_patients(detections_b, n_lesions, everyone)
    observed = mfroc_a - mfroc_b
    rng = np.random.default_rng(seed)
    extreme = 0
    for _ in range(n_permutations):
        swap = rng.random(len(n_lesions)) < 0.5
        a = [db if s else da for da, db, s in zip(detections_a, detections_b, swap)]
        b = [da if s else db for da, db, s in zip(detections_a, detections_b, swap)]
        difference = mfroc_of_patients(a, n_lesions, everyone) - mfroc_of_patients(b, n_lesions, everyone)
        extreme += abs(difference) >= abs(observed) - 1e-12
    interval = paired_mfroc_difference(detections_a, detections_b, n_lesions, n_boot=n_boot, seed=seed)
    return PairedMfrocResult(mfroc_a, mfroc_b, observed, (interval.low, interval.high),
                             (1 + extreme) / (1 + n_permutations), len(n_lesions), n_permutations)
