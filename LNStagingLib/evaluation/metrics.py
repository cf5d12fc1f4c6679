"""Segmentation and patient-level metrics of paper 2 (Tables V and VI).

Segmentation: voxel Dice, and instance recall/precision/F-measure where a predicted and a ground-truth instance
match when their IoU is >= 0.3 (one-to-one, maximising the summed IoU). Patient level: sensitivity, specificity,
accuracy, balanced accuracy and ROC AUC of a metastasis probability.
Arrays or SimpleITK images are accepted; images must share a grid (the caller resamples, never this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

INSTANCE_IOU = 0.3  # paper 2: a predicted LN instance is correct when IoU >= 0.3 with a ground-truth instance


def _array(x) -> np.ndarray:
    return sitk.GetArrayViewFromImage(x) if isinstance(x, sitk.Image) else np.asarray(x)


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"Prediction {a.shape} and ground truth {b.shape} are not on the same grid; resample first.")


def dice(prediction, reference, empty_value: float = float("nan")) -> float:
    """Voxel Dice of two binary masks (nonzero = foreground); ``empty_value`` when both are empty."""
    p, r = _array(prediction) != 0, _array(reference) != 0
    _same_shape(p, r)
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return float(empty_value)
    return 2.0 * int(np.logical_and(p, r).sum()) / total


@dataclass(frozen=True)
class InstanceMatch:
    """One case's instance matching. ``pairs`` holds (prediction label, reference label, IoU) of the matches."""

    n_pred: int
    n_ref: int
    pairs: tuple[tuple[int, int, float], ...]

    @property
    def tp(self) -> int:
        return len(self.pairs)

    @property
    def recall(self) -> float:
        return self.tp / self.n_ref if self.n_ref else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else float("nan")

    @property
    def f_measure(self) -> float:
        return 2 * self.tp / (self.n_pred + self.n_ref) if (self.n_pred + self.n_ref) else float("nan")

    def as_dict(self) -> dict:
        return {"n_pred": self.n_pred, "n_ref": self.n_ref, "tp": self.tp, "recall": self.recall,
                "precision": self.precision, "f_measure": self.f_measure}


def instance_iou(prediction_labels, reference_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU matrix between the instances of two label maps: (iou[n_pred, n_ref], pred ids, ref ids)."""
    p, r = _array(prediction_labels), _array(reference_labels)
    _same_shape(p, r)
    p, r = p.ravel().astype(np.int64), r.ravel().astype(np.int64)
    pred_ids, p_inv, p_sizes = np.unique(p, return_inverse=True, return_counts=True)
    ref_ids, r_inv, r_sizes = np.unique(r, return_inverse=True, return_counts=True)
    overlap = np.zeros((len(pred_ids), len(ref_ids)), np.int64)
    np.add.at(overlap, (p_inv, r_inv), 1)
    keep_p, keep_r = pred_ids != 0, ref_ids != 0
    overlap = overlap[np.ix_(keep_p, keep_r)]
    union = p_sizes[keep_p][:, None] + r_sizes[keep_r][None, :] - overlap
    iou = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
    return iou, pred_ids[keep_p], ref_ids[keep_r]


def match_instances(prediction_labels, reference_labels, iou_threshold: float = INSTANCE_IOU) -> InstanceMatch:
    """One-to-one matching of instances (label maps: value = instance id, 0 = background) at IoU >= threshold.

    The assignment maximises the summed IoU over pairs that pass the threshold (Hungarian algorithm), so a
    prediction covering two nodes matches at most one of them.
    """
    iou, pred_ids, ref_ids = instance_iou(prediction_labels, reference_labels)
    pairs: list[tuple[int, int, float]] = []
    if iou.size:
        eligible = np.where(iou >= iou_threshold, iou, 0.0)
        rows, cols = linear_sum_assignment(eligible, maximize=True)
        pairs = [(int(pred_ids[i]), int(ref_ids[j]), float(iou[i, j])) for i, j in zip(rows, cols)
                 if iou[i, j] >= iou_threshold]
    return InstanceMatch(len(pred_ids), len(ref_ids), tuple(pairs))


def pooled_instance_metrics(matches: Sequence[InstanceMatch]) -> dict:
    """Recall, precision and F-measure over the instances of all cases pooled together."""
    n_pred = sum(m.n_pred for m in matches)
    n_ref = sum(m.n_ref for m in matches)
    tp = sum(m.tp for m in matches)
    return {"n_pred": n_pred, "n_ref": n_ref, "tp": tp,
            "recall": tp / n_ref if n_ref else float("nan"),
            "precision": tp / n_pred if n_pred else float("nan"),
            "f_measure": 2 * tp / (n_pred + n_ref) if n_pred + n_ref else float("nan")}


def _binary_labels(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError("Patient labels must be a 1-D sequence of 0 and 1.")
    return y.astype(bool)


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties); nan when one class is absent."""
    y = _binary_labels(y_true)
    s = np.asarray(y_score, float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(y_true, y_score, threshold: float = 0.5) -> dict:
    """Patient-level metrics of paper 2 (Table VI): predictions are ``y_score >= threshold``.

    Sensitivity (specificity) is nan when the cohort has no positive (negative) patient; balanced accuracy is
    then nan too.
    """
    y = _binary_labels(y_true)
    s = np.asarray(y_score, float)
    if s.shape != y.shape:
        raise ValueError("y_true and y_score must have the same length.")
    pred = s >= threshold
    tp, tn = int(np.sum(pred & y)), int(np.sum(~pred & ~y))
    fp, fn = int(np.sum(pred & ~y)), int(np.sum(~pred & y))
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return {"sensitivity": sens, "specificity": spec, "balanced_accuracy": (sens + spec) / 2,
            "accuracy": (tp + tn) / len(y) if len(y) else float("nan"), "auc": roc_auc(y, s),
            "tp": tp, "tn": tn, "fp": fp, "fn": fn, "threshold": float(threshold)}
