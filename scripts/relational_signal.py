#!/usr/bin/env python
"""How much can a candidate's neighbours tell about it, beyond its own appearance and its distance to the tumour?

An oracle measurement on a phantom cohort, to read paper 1's Table 1 rows: it uses the phantom's ground-truth
appearance (SUVmax, diameter, lesion kind from candidates.csv), which no CNN sees, so it bounds what the
stage-2 models can reach. Two logistic regressions, cross-validated by patient (6 folds):
- own: log SUVmax, diameter, is-a-node, their interaction, distance to the tumour centroid;
- own + neighbours: also the own-model score of the patient's highest-scoring other node, of the highest within
  40 mm, and of the nearest node (what a graph head over all candidates could learn).
The difference in mFROC (mean sensitivity at 2, 3, 4, 6 FP/patient) is the relational signal a GNN can add when
its CNN is perfect. Runs in seconds:

  python scripts/relational_signal.py --data COHORT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from LNStagingLib.dataset.format import read_dataset  # noqa: E402
from LNStagingLib.evaluation.froc import candidate_detections, froc_curve, mean_sensitivity  # noqa: E402
from LNStagingLib.evaluation.metrics import roc_auc  # noqa: E402

NEAR_MM = 40.0
FOLDS = 6


def case_table(case) -> dict:
    """Ground-truth appearance, positions, labels and lesion count of one phantom case."""
    import SimpleITK as sitk

    rows = case.candidates()
    if not rows or "suv_max" not in rows[0] or "kind" not in rows[0]:
        raise SystemExit(f"{case.case_id}: candidates.csv lacks suv_max/kind; this needs a phantom cohort")
    tumor = case.load("tumor")
    index = np.argwhere(sitk.GetArrayViewFromImage(tumor) != 0)[:, ::-1].mean(axis=0)
    tumour_centre = np.array(tumor.TransformContinuousIndexToPhysicalPoint(index.tolist()))
    xyz = np.array([[float(r["x"]), float(r["y"]), float(r["z"])] for r in rows])
    suv = np.array([float(r["suv_max"]) for r in rows])
    node = np.array([r["kind"] == "node" for r in rows], float)
    own = np.column_stack([np.log(suv + 0.1), np.array([float(r["diameter_mm"]) for r in rows]) / 10, node,
                           node * np.log(suv + 0.1), np.linalg.norm(xyz - tumour_centre, axis=1) / 100])
    gtv = sitk.GetArrayFromImage(case.load("gtv_ln"))
    return {"own": own, "xyz": xyz, "node": node.astype(bool), "labels": np.array([int(r["label"]) for r in rows]),
            "node_ids": np.array([int(r["node_id"]) for r in rows]), "n_lesions": int(len(np.unique(gtv[gtv > 0])))}


def neighbour_features(table: dict, score: np.ndarray) -> np.ndarray:
    """Per candidate: the best other node's score in the patient, within NEAR_MM, and the nearest node's score."""
    d = np.linalg.norm(table["xyz"][:, None] - table["xyz"][None], axis=2)
    np.fill_diagonal(d, np.inf)
    out = np.full((len(score), 3), -10.0)
    for i in range(len(score)):
        others = table["node"].copy()
        others[i] = False
        if others.any():
            out[i, 0] = score[others].max()
            near = others & (d[i] < NEAR_MM)
            out[i, 1] = score[near].max() if near.any() else -10.0
            out[i, 2] = score[np.argmin(np.where(others, d[i], np.inf))]
    return np.maximum(out, -10.0) / 5


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method (weights, bias last)."""
    x = np.column_stack([x, np.ones(len(x))])
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        hessian = (x.T * (p * (1 - p))) @ x + l2 * np.eye(len(w))
        w -= np.linalg.solve(hessian, x.T @ (p - y) + l2 * w)
    return w


def logits(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))]) @ w


def cross_validated(tables: list[dict], features) -> list[np.ndarray]:
    """Out-of-fold logits per case; ``features(table, w_own)`` builds a case's design matrix from its fold's own model."""
    folds = np.arange(len(tables)) % FOLDS
    out: list = [None] * len(tables)
    for k in range(FOLDS):
        train = [t for t, f in zip(tables, folds) if f != k]
        y = np.concatenate([t["labels"] for t in train])
        w_own = fit_logistic(np.vstack([t["own"] for t in train]), y)
        w = fit_logistic(np.vstack([features(t, w_own) for t in train]), y)
        for i in np.nonzero(folds == k)[0]:
            out[i] = logits(w, features(tables[i], w_own))
    return out


def summary(tables: list[dict], scores: list[np.ndarray]) -> dict:
    detections = [candidate_detections(1 / (1 + np.exp(-s)), t["labels"], t["node_ids"]) for t, s in zip(tables, scores)]
    curve = froc_curve(detections, [t["n_lesions"] for t in tables])
    auc = roc_auc(np.concatenate([t["labels"] for t in tables]), np.concatenate(scores))
    return {"mFROC": round(float(mean_sensitivity(curve)), 3), "AUC": round(auc, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="phantom cohort folder (lnstaging phantom)")
    args = parser.parse_args()
    dataset = read_dataset(args.data)
    tables = [case_table(dataset.case(c)) for c in dataset.case_ids]
    own = cross_validated(tables, lambda t, w: t["own"])
    both = cross_validated(tables, lambda t, w: np.column_stack([t["own"], neighbour_features(t, logits(w, t["own"]))]))
    report = {"data": str(args.data), "patients": len(tables),
              "candidates": int(sum(len(t["labels"]) for t in tables)),
              "gtv_ln": int(sum(t["n_lesions"] for t in tables)),
              "own": summary(tables, own), "own_and_neighbours": summary(tables, both)}
    report["neighbour_gain_mFROC"] = round(report["own_and_neighbours"]["mFROC"] - report["own"]["mFROC"], 3)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
