"""Bootstrap 95% confidence intervals (paper 2, sec. IV-E: 1,000 resamples, 2.5th and 97.5th percentiles).

Patients are the resampling unit (for FROC too: a patient's candidates travel together). Seeds are explicit,
so the same inputs give the same interval. Resamples where a statistic is undefined (e.g. AUC of a resample
without a positive patient) are left out and counted in ``n_valid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class ConfidenceInterval:
    value: float  # the statistic on the full sample
    low: float
    high: float
    level: float
    n_valid: int  # resamples on which the statistic was defined

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def bootstrap_indices(n_items: int, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """``n_boot`` resamples (rows) of ``n_items`` indices drawn with replacement."""
    if n_items < 1:
        raise ValueError("Bootstrap needs at least one item.")
    return np.random.default_rng(seed).integers(0, n_items, size=(n_boot, n_items))


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n_items: int, n_boot: int = N_BOOTSTRAP,
                 seed: int = 0, level: float = 0.95) -> ConfidenceInterval:
    """Percentile interval of ``statistic(indices)`` over patient resamples."""
    value = float(statistic(np.arange(n_items)))
    samples = np.array([statistic(idx) for idx in bootstrap_indices(n_items, n_boot, seed)], float)
    return _interval(value, samples, level)


def bootstrap_metrics(metrics: Callable[[np.ndarray], dict], n_items: int, keys: Sequence[str] | None = None,
                      n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = 0.95) -> dict[str, ConfidenceInterval]:
    """Several statistics from one function returning a dict, on the same resamples (one pass)."""
    full = metrics(np.arange(n_items))
    keys = list(keys) if keys is not None else [k for k, v in full.items() if isinstance(v, float)]
    draws = [metrics(idx) for idx in bootstrap_indices(n_items, n_boot, seed)]
    return {k: _interval(float(full[k]), np.array([d[k] for d in draws], float), level) for k in keys}


def _interval(value: float, samples: np.ndarray, level: float) -> ConfidenceInterval:
    valid = samples[np.isfinite(samples)]
    if len(valid) == 0:
        return ConfidenceInterval(value, float("nan"), float("nan"), level, 0)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(valid, [tail, 100 - tail])
    return ConfidenceInterval(value, float(low), float(high), level, int(len(valid)))


def bootstrap_binary_metrics(y_true, y_score, threshold: float = 0.5, n_boot: int = N_BOOTSTRAP, seed: int = 0,
                             level: float = 0.95) -> dict[str, ConfidenceInterval]:
    """Patient-level metrics (balanced accuracy, AUC, sensitivity, specificity, accuracy) with percentile CIs."""
    from .metrics import binary_metrics

    y, s = np.asarray(y_true), np.asarray(y_score, float)
    return bootstrap_metrics(lambda idx: binary_metrics(y[idx], s[idx], threshold), len(y),
                             keys=("balanced_accuracy", "auc", "sensitivity", "specificity", "accuracy"),
                             n_boot=n_boot, seed=seed, level=level)
