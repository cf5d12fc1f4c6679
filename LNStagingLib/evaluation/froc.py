"""Candidate-level FROC over patients (paper 1, sec. 3): sensitivity against false positives per patient.

Input, per patient, a list of detections ``(probability, hit)`` and the number of ground-truth lesions of that
patient. ``hit`` names the ground-truth lesion a detection matches (any hashable id, e.g. the GTV_LN node id),
or is ``None``/``False`` for a false positive; ``True`` means "a true positive of its own distinct lesion".

Counting rules (the CAMELYON16 rules MONAI's froc functions implement, so the two agree):
  * a lesion counts once, with the highest probability among the detections that hit it;
  * further detections of an already-hit lesion are neither true nor false positives (ignored);
  * FP per patient = false positives at or above the threshold summed over patients / number of patients
    (patients without any detection count in the denominator);
  * sensitivity = lesions hit at or above the threshold / all lesions of all patients (lesions the candidate
    generator missed count as misses at every threshold).

The curve holds one operating point per distinct probability (threshold t: "probability >= t" is positive),
plus the point (0, 0) for a threshold above every probability. MONAI's ``compute_froc_curve_data`` drops the
lowest distinct probability of its input (which is 0 whenever a lesion is missed, the usual case); when every
lesion is detected it therefore lacks the all-detections point that this curve keeps.

Sensitivity at a given FP rate f (interpolation rule): the operating points, in order of decreasing threshold,
form a polyline in the (FP/patient, sensitivity) plane; the sensitivity at f is the polyline's value at f,
linear between neighbouring points and, where several points share the FP rate f, the highest of them. Beyond
the last point (more FPs than the detections can make) it is the last sensitivity. This is ``np.interp`` on the
curve, as in MONAI's ``compute_froc_score`` and the CAMELYON16 evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from .bootstrap import bootstrap_ci

PAPER_FP_RATES = (2.0, 3.0, 4.0, 6.0)  # mFROC of paper 1: mean sensitivity at 2, 3, 4, 6 FP per patient

Detection = tuple[float, Hashable | None]


@dataclass(frozen=True)
class Scored:
    """Detections reduced to what FROC and F1 need: one probability per hit lesion, one per false positive."""

    tp_probs: np.ndarray  # highest probability of each detected lesion
    fp_probs: np.ndarray  # probability of each false positive detection
    n_lesions: int
    n_patients: int


@dataclass(frozen=True)
class FrocCurve:
    """Operating points ordered by decreasing threshold; the first is (threshold=inf, 0 FP, sensitivity 0)."""

    thresholds: np.ndarray
    fp_per_patient: np.ndarray
    sensitivity: np.ndarray
    n_lesions: int
    n_patients: int

    def as_dict(self) -> dict:
        return {"thresholds": [float(t) for t in self.thresholds[1:]],
                "fp_per_patient": self.fp_per_patient[1:].tolist(), "sensitivity": self.sensitivity[1:].tolist(),
                "n_lesions": self.n_lesions, "n_patients": self.n_patients}


def score_detections(detections: Sequence[Sequence[Detection]], n_lesions: Sequence[int]) -> Scored:
    """Apply the counting rules above. ``detections[i]`` and ``n_lesions[i]`` belong to patient i."""
    if len(detections) != len(n_lesions):
        raise ValueError(f"{len(detections)} patients of detections but {len(n_lesions)} lesion counts.")
    tp_probs: list[float] = []
    fp_probs: list[float] = []
    for patient, (dets, n) in enumerate(zip(detections, n_lesions)):
        best: dict[Hashable, float] = {}
        for k, (prob, hit) in enumerate(dets):
            prob = float(prob)
            if not np.isfinite(prob):
                raise ValueError(f"Patient {patient}: detection {k} has a non-finite probability {prob}.")
            if hit is None or hit is False:
                fp_probs.append(prob)
                continue
            key = ("distinct", k) if hit is True else hit
            best[key] = max(prob, best.get(key, -np.inf))
        if len(best) > n:
            raise ValueError(f"Patient {patient}: {len(best)} distinct lesions hit but only {n} lesions given.")
        tp_probs.extend(best.values())
    return Scored(np.asarray(tp_probs, float), np.asarray(fp_probs, float), int(sum(n_lesions)), len(n_lesions))


def froc_curve(detections: Sequence[Sequence[Detection]], n_lesions: Sequence[int]) -> FrocCurve:
    """The FROC curve of a cohort (see the module docstring for the counting rules)."""
    return froc_curve_from_scored(score_detections(detections, n_lesions))


def froc_curve_from_scored(scored: Scored) -> FrocCurve:
    if scored.n_patients == 0:
        raise ValueError("FROC needs at least one patient.")
    thresholds = np.unique(np.concatenate([scored.tp_probs, scored.fp_probs]))[::-1]
    tp_sorted, fp_sorted = np.sort(scored.tp_probs), np.sort(scored.fp_probs)
    # number of probabilities >= t for each threshold t
    n_tp = len(tp_sorted) - np.searchsorted(tp_sorted, thresholds, side="left")
    n_fp = len(fp_sorted) - np.searchsorted(fp_sorted, thresholds, side="left")
    sensitivity = n_tp / scored.n_lesions if scored.n_lesions else np.full(len(thresholds), np.nan)
    return FrocCurve(
        thresholds=np.concatenate([[np.inf], thresholds]),
        fp_per_patient=np.concatenate([[0.0], n_fp / scored.n_patients]),
        sensitivity=np.concatenate([[0.0 if scored.n_lesions else np.nan], sensitivity]),
        n_lesions=scored.n_lesions, n_patients=scored.n_patients)


def sensitivity_at(curve: FrocCurve, fp_rate: float) -> float:
    """Sensitivity at ``fp_rate`` false positives per patient (polyline rule of the module docstring)."""
    x, y = curve.fp_per_patient, curve.sensitivity
    if fp_rate < 0:
        raise ValueError("The FP rate must be >= 0.")
    i = int(np.searchsorted(x, fp_rate, side="right")) - 1  # last point with x <= fp_rate: the highest at a tie
    if i == len(x) - 1 or x[i] == fp_rate:
        return float(y[i])
    return float(y[i] + (y[i + 1] - y[i]) * (fp_rate - x[i]) / (x[i + 1] - x[i]))


def mean_sensitivity(curve: FrocCurve, fp_rates: Sequence[float] = PAPER_FP_RATES) -> float:
    """mFROC: the mean of the sensitivities at the given FP-per-patient rates (paper 1: 2, 3, 4, 6)."""
    return float(np.mean([sensitivity_at(curve, f) for f in fp_rates]))


def threshold_at_fp(curve: FrocCurve, fp_rate: float) -> float:
    """The lowest probability threshold whose operating point has at most ``fp_rate`` FP per patient.

    This is the operating point a user picks as "N false positives per patient"; inf if none qualifies.
    """
    ok = np.flatnonzero(curve.fp_per_patient <= fp_rate)
    return float(curve.thresholds[ok[-1]])


@dataclass(frozen=True)
class F1Result:
    threshold: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def f1_at(detections: Sequence[Sequence[Detection]], n_lesions: Sequence[int], threshold: float = 0.5) -> F1Result:
    """Lesion-level F1 with detections of probability >= threshold as positives (same counting rules as FROC)."""
    return _f1(score_detections(detections, n_lesions), threshold)


def best_f1(detections: Sequence[Sequence[Detection]], n_lesions: Sequence[int]) -> F1Result:
    """The highest F1 over all thresholds (ties: the highest threshold)."""
    scored = score_detections(detections, n_lesions)
    thresholds = np.unique(np.concatenate([scored.tp_probs, scored.fp_probs]))[::-1]
    results = [_f1(scored, float(t)) for t in thresholds] or [_f1(scored, np.inf)]
    return max(results, key=lambda r: (r.f1, r.threshold))


def _f1(scored: Scored, threshold: float) -> F1Result:
    tp = int(np.sum(scored.tp_probs >= threshold))
    fp = int(np.sum(scored.fp_probs >= threshold))
    fn = scored.n_lesions - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / scored.n_lesions if scored.n_lesions else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return F1Result(float(threshold), tp, fp, fn, precision, recall, f1)


def candidate_detections(probabilities: Sequence[float], labels: Sequence[int],
                         node_ids: Sequence[int] | None = None) -> list[Detection]:
    """One patient's detections from a candidate table: label 1 hits lesion ``node_id`` (or its own lesion when
    node ids are not given), label 0 is a false positive (e.g. a negative node or a look-alike)."""
    if len(probabilities) != len(labels) or (node_ids is not None and len(node_ids) != len(labels)):
        raise ValueError("probabilities, labels and node_ids must have one entry per candidate.")
    out: list[Detection] = []
    for k, (prob, label) in enumerate(zip(probabilities, labels)):
        if not label:
            out.append((float(prob), None))
        elif node_ids is None or not node_ids[k]:
            out.append((float(prob), True))
        else:
            out.append((float(prob), int(node_ids[k])))
    return out


def top_k_revealed(probabilities: Sequence[float], k: int) -> np.ndarray:
    """The k most probable candidates (ties in candidate order) as a boolean mask: the decisions a reviewer who works
    down the list has made first."""
    revealed = np.zeros(len(probabilities), dtype=bool)
    revealed[np.argsort(-np.asarray(probabilities), kind="stable")[:k]] = True
    return revealed


def pending_detections(probabilities: Sequence[float], labels: Sequence[int], node_ids: Sequence[int],
                       revealed: np.ndarray, n_lesions: int) -> tuple[list[Detection], int]:
    """(detections of the still-pending candidates, lesions still to find) after the ``revealed`` candidates were
    decided by their ground truth (re-scoring, issue 19). A lesion an accepted candidate already found is no longer
    counted, and its other candidates are left out (neither hit nor false positive); node id 0 is an unnamed lesion."""
    probabilities, labels, node_ids = np.asarray(probabilities), np.asarray(labels), np.asarray(node_ids)
    found = {int(n) for n, y in zip(node_ids[revealed], labels[revealed]) if y and n}
    found_unnamed = int(np.sum((labels[revealed] == 1) & (node_ids[revealed] == 0)))
    keep = ~revealed & ~np.isin(node_ids, sorted(found))
    detections = candidate_detections(probabilities[keep], labels[keep], node_ids[keep])
    return detections, max(n_lesions - len(found) - found_unnamed, 0)


def bootstrap_mfroc(detections: Sequence[Sequence[Detection]], n_lesions: Sequence[int],
                    n_boot: int = 1000, seed: int = 0):
    """mFROC with a percentile 95% CI over patient resamples (a patient's candidates and lesions travel together)."""
    return bootstrap_ci(lambda idx: _mfroc_of(detections, n_lesions, idx), len(detections), n_boot, seed)


def paired_mfroc_difference(detections_a: Sequence[Sequence[Detection]], detections_b: Sequence[Sequence[Detection]],
                            n_lesions: Sequence[int], n_boot: int = 1000, seed: int = 0):
    """mFROC(a) - mFROC(b) of two models on the same patients, with a 95% CI from paired patient resamples.

    Pairing removes the between-patient variance both models share, so the interval is far narrower than the
    two separate intervals suggest; an interval that excludes 0 is a difference this test set can show.
    """
    if len(detections_a) != len(detections_b):
        raise ValueError("Both models must be scored on the same patients.")
    return bootstrap_ci(lambda idx: _mfroc_of(detections_a, n_lesions, idx) - _mfroc_of(detections_b, n_lesions, idx),
                        len(detections_a), n_boot, seed)


def _mfroc_of(detections, n_lesions, idx) -> float:
    """mFROC of the patients ``idx`` (repeats allowed); NaN when the resample holds no lesion."""
    lesions = [n_lesions[i] for i in idx]
    if not sum(lesions):
        return float("nan")
    return mean_sensitivity(froc_curve([detections[i] for i in idx], lesions))
