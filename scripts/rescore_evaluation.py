#!/usr/bin/env python
"""Does re-scoring from review decisions help the still-pending candidates? (issue 19, docs/RESULTS.md)

For each held-out test patient the reviewer decides the k most probable candidates first (k = 1, 2, 3; ranked by
the review-state model with nothing revealed), with the ground truth as decision (label 1 accepted, 0 rejected).
The remaining candidates are scored three ways, on exactly the same pending set:
  rescored  - the review-state GNNp with the k decisions fed in (inference/rescore.py's computation),
  nothing   - the same model with nothing revealed,
  baseline  - the CNN + priors (--baseline, a stage-2 checkpoint).
  regression - a reference for what the decisions can tell with this CNN: a logistic regression on the CNN + priors
             logit and what the decisions say about each candidate (nearness to, and appearance similarity with, the
             nearest accepted and rejected candidate), fitted on the cohort's training patients (top 1-3 revealed).
             Few parameters, so it cannot overfit 36 patients the way a learnt message channel can; when it gains
             and the re-scored model does not, the network failed to learn a signal that is there.
The pending mFROC counts the lesions not already found by an accepted candidate; pending candidates of a lesion
already found are left out (neither hit nor false positive). Paired bootstrap 95% CIs over patients
(evaluation.froc.paired_mfroc_difference, 1000 resamples).

  python scripts/rescore_evaluation.py --data WORK/phantom_strong --model WORK/strong_cls_gnnp_reveal/cls_model.pt \
      --baseline WORK/strong_cls_cnn_prior/cls_model.pt --out WORK/strong_cls_gnnp_reveal/eval_rescore_test.json

and on the 48 patients of the independent test cohort, the regression fitted on the training cohort:

  python scripts/rescore_evaluation.py --data WORK/phantom_strong_test --fit-data WORK/phantom_strong \
      --model ... --baseline ... --out WORK/strong_cls_gnnp_reveal/eval_rescore_external.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from LNStagingLib.candidates.patches import CandidatePatches  # noqa: E402
from LNStagingLib.dataset.format import read_dataset  # noqa: E402
from LNStagingLib.evaluation import froc  # noqa: E402
from LNStagingLib.evaluation.froc import (  # noqa: E402
    bootstrap_mfroc, froc_curve, mean_sensitivity, paired_mfroc_difference, top_k_revealed,
)
from LNStagingLib.inference.classification import classify_patches  # noqa: E402
from LNStagingLib.models import stage2  # noqa: E402,F401  (registers "stage2")
from LNStagingLib.models.checkpoint import load_model, sha256_of  # noqa: E402
from LNStagingLib.training.cls import case_lesions, load_case_candidates  # noqa: E402
from relational_signal import NEAR_MM, fit_logistic  # noqa: E402


@torch.inference_mode()
def head_inputs(model, case):
    model.eval()
    images = torch.from_numpy(case.images.astype(np.float32))
    masks = torch.from_numpy(case.masks.astype(np.float32))
    logits, f = [], []
    for start in range(0, len(images), 16):
        a, b = model.features(images[start:start + 16], masks[start:start + 16])
        logits.append(a)
        f.append(b)
    priors = torch.from_numpy(case.priors).float() if model.config.use_priors else None
    return torch.cat(logits), torch.cat(f), priors


@torch.inference_mode()
def probabilities(model, inputs, states) -> np.ndarray:
    logits, f, priors = inputs
    return torch.sigmoid(model.head_logits(logits, f, priors, torch.as_tensor(states))).numpy()


def nearest_decision_features(xyz: np.ndarray, f: np.ndarray, states: np.ndarray) -> np.ndarray:
    """The reference regression's view of the decisions (the network's is models/gnn.py decision_features).
    [N, 6] per candidate: nearness exp(-d / 40 mm) to the nearest accepted candidate and its largest cosine
    similarity of CNN features f with an accepted one; the same two for rejected ones; whether any accepted / any
    rejected decision exists. 0 where there is no decision of that kind."""
    distance = np.linalg.norm(xyz[:, None] - xyz[None], axis=2)
    unit = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-6)
    similarity = unit @ unit.T
    out = np.zeros((len(xyz), 6))
    for column, decided in enumerate((states == 1, states == 0)):
        if decided.any():
            out[:, 2 * column] = np.exp(-distance[:, decided].min(axis=1) / NEAR_MM)
            out[:, 2 * column + 1] = similarity[:, decided].max(axis=1)
            out[:, 4 + column] = 1.0
    return out


def regression_inputs(logit: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The reference regression's inputs: the CNN + priors logit, the decision features and their products."""
    return np.column_stack([logit, features, logit[:, None] * features])


def baseline_inputs(baseline, case) -> tuple[np.ndarray, np.ndarray]:
    """(CNN + priors logits, CNN features f) of one case's candidates."""
    logits, f, priors = head_inputs(baseline, case)
    with torch.inference_mode():
        return baseline.head_logits(logits, f, priors).numpy(), f.numpy()


def case_positions(dataset, case_id: str) -> np.ndarray:
    return np.array([[float(r["x"]), float(r["y"]), float(r["z"])] for r in dataset.case(case_id).candidates()])


def fit_regression(dataset, baseline, baseline_config, ks, cache) -> np.ndarray:
    """Weights of the reference regression, fitted on every non-test patient with its top-k (by the CNN + priors)
    decided from the ground truth, for each k."""
    rows, labels = [], []
    for case_id in [c for c in dataset.case_ids if c not in set(dataset.test_ids)]:
        case = load_case_candidates(dataset, case_id, baseline_config, cache)
        logit, f = baseline_inputs(baseline, case)
        xyz = case_positions(dataset, case_id)
        for k in ks:
            revealed = top_k_revealed(logit, k)
            states = np.where(revealed, case.labels, -1)
            rows.append(regression_inputs(logit, nearest_decision_features(xyz, f, states))[~revealed])
            labels.append(case.labels[~revealed])
    return fit_logistic(np.concatenate(rows), np.concatenate(labels).astype(float))


def pending_detections(case, probs: np.ndarray, revealed: np.ndarray):
    """(detections of the pending candidates, lesions still to find) after the ``revealed`` decisions."""
    return froc.pending_detections(probs, case.labels, case.node_ids, revealed, case_lesions(case))


def evaluate(data, model_path, baseline_path, ks=(1, 2, 3), cache=None, fit_data=None) -> dict:
    """The report of the module docstring on ``data``'s test patients; the reference regression is fitted on the
    non-test patients of ``fit_data`` (default ``data``; the training cohort when ``data`` is an external test one)."""
    dataset = read_dataset(data)
    fit_dataset = read_dataset(fit_data) if fit_data else dataset
    model, config, _ = load_model(model_path)
    if not config.review_state:
        raise SystemExit(f"{model_path} was trained without --reveal-labels")
    baseline, baseline_config, _ = load_model(baseline_path)
    cases = [load_case_candidates(dataset, c, config, cache) for c in dataset.test_ids]
    base_probs = [classify_patches(baseline, CandidatePatches(c.images.astype(np.float32), c.masks.astype(np.float32),
                                                              c.scales),
                                   c.priors if baseline_config.use_priors else None) for c in cases]
    inputs = [head_inputs(model, c) for c in cases]
    weights = fit_regression(fit_dataset, baseline, baseline_config, ks, cache)
    reference = [(*baseline_inputs(baseline, c), case_positions(dataset, c.case_id)) for c in cases]
    nothing = [probabilities(model, x, -np.ones(len(c.labels), dtype=np.int64)) for x, c in zip(inputs, cases)]
    report = {"model": Path(model_path).name, "model_sha256": sha256_of(model_path),
              "baseline": Path(baseline_path).name, "baseline_sha256": sha256_of(baseline_path),
              "dataset": dataset.name, "regression_fitted_on": fit_dataset.name, "patients": len(cases), "k": {}}
    for k in ks:
        scored = {"rescored": [], "nothing": [], "baseline": [], "regression": []}
        lesions = []
        for case, x, p0, pb, (logit, f, xyz) in zip(cases, inputs, nothing, base_probs, reference):
            revealed = top_k_revealed(p0, k)
            states = np.where(revealed, case.labels, -1).astype(np.int64)
            p_re = probabilities(model, x, states)
            design = np.column_stack([regression_inputs(logit, nearest_decision_features(xyz, f, states)),
                                      np.ones(len(logit))])
            p_regression = 1 / (1 + np.exp(-design @ weights))
            for name, p in (("rescored", p_re), ("nothing", p0), ("baseline", pb), ("regression", p_regression)):
                detections, n_lesions = pending_detections(case, p, revealed)
                scored[name].append(detections)
            lesions.append(n_lesions)
        row = {"pending_lesions": int(sum(lesions))}
        for name, detections in scored.items():
            ci = bootstrap_mfroc(detections, lesions)
            row[name] = {"mFROC": mean_sensitivity(froc_curve(detections, lesions)), "95ci": [ci.low, ci.high]}
        for first, other in (("rescored", "nothing"), ("rescored", "baseline"), ("regression", "baseline")):
            d = paired_mfroc_difference(scored[first], scored[other], lesions)
            row[f"{first}_minus_{other}"] = {"difference": d.value, "95ci": [d.low, d.high]}
        report["k"][str(k)] = row
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True, help="review-state stage-2 checkpoint (train cls --reveal-labels)")
    parser.add_argument("--baseline", required=True, help="CNN + priors stage-2 checkpoint")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cache", type=Path, help="patch cache folder (e.g. the training run's cache)")
    parser.add_argument("--fit-data", help="cohort whose non-test patients fit the reference regression (default "
                        "--data; give the training cohort when --data is an external test cohort)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = evaluate(args.data, args.model, args.baseline, args.k, args.cache, args.fit_data)
    Path(args.out).write_text(json.dumps(report, indent=1))
    for k, row in report["k"].items():
        diff = {d: "{:+.3f} [{:+.3f}, {:+.3f}]".format(row[d]["difference"], *row[d]["95ci"])
                for d in ("rescored_minus_nothing", "rescored_minus_baseline", "regression_minus_baseline")}
        print(f"k={k}: {row['pending_lesions']} pending GTV_LN | pending mFROC re-scored {row['rescored']['mFROC']:.3f}"
              f" | nothing revealed {row['nothing']['mFROC']:.3f} | CNN+priors {row['baseline']['mFROC']:.3f} | "
              f"re-scored - nothing {diff['rescored_minus_nothing']} | re-scored - CNN+priors "
              f"{diff['rescored_minus_baseline']} | reference regression {row['regression']['mFROC']:.3f}, minus "
              f"CNN+priors {diff['regression_minus_baseline']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
