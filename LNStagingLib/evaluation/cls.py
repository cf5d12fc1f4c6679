"""``lnstaging evaluate cls``: candidate FROC, mFROC (mean sensitivity at 2, 3, 4, 6 FP/patient) and F1 of a stage-2 model.

Counting follows evaluation/froc.py (a GTV_LN counts once, with its best candidate; lesions that no candidate hits are
misses). Patches are cut with the settings stored in the checkpoint, so evaluation sees what training saw.
Writes eval_cls_<split>.json (metrics with a 1000-bootstrap 95% CI on the mFROC, FROC curve, per-candidate
probabilities and their ground truth, so two models can be compared on paired patients with
evaluation.froc.paired_mfroc_difference) next to the model unless --out.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DatasetError, ModelError


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="cohort folder (docs/DATASET.md) with candidates.csv per case")
    parser.add_argument("--model", required=True, help="stage-2 checkpoint (cls_model.pt)")
    parser.add_argument("--split", default="test", choices=("test", "val"), help="held-out test cases or fold K's")
    parser.add_argument("--fold", type=int, default=0, help="the fold whose validation cases --split val uses")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", help="metrics JSON (default: eval_cls_<split>.json next to the model)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing metrics JSON")


def evaluate_cases(model, cases: list[CaseCandidates], device: str, confidence_interval: bool = False):
    """(metrics, probabilities per case, FROC curve): mFROC at 2, 3, 4, 6 FP/patient, F1 at 0.5, best F1, and with
    ``confidence_interval`` the mFROC's 1000-bootstrap 95% CI (evaluation only: not needed every training epoch)."""
    import numpy as np

    from ..candidates.patches import CandidatePatches
    from .froc import (
        best_f1, bootstrap_mfroc, candidate_detections, f1_at, froc_curve, mean_sensitivity, sensitivity_at,
    )
    from ..inference.case_inputs import case_lesions
    from ..inference.classification import classify_patches

    probabilities, detections, lesions = [], [], []
    for case in cases:
        patches = CandidatePatches(case.images.astype(np.float32), case.masks.astype(np.float32), case.scales)
        p = classify_patches(model, patches, case.priors if model.config.use_priors else None, device=device)
        probabilities.append(p)
        detections.append(candidate_detections(p, case.labels, case.node_ids))
        lesions.append(case_lesions(case))
    curve = froc_curve(detections, lesions)
    metrics = {"mFROC": mean_sensitivity(curve), **{f"sens@{f:g}FP": sensitivity_at(curve, f) for f in (2, 3, 4, 6)},
               "F1@0.5": f1_at(detections, lesions, 0.5).f1, "best_F1": best_f1(detections, lesions).as_dict(),
               "patients": len(cases), "lesions": int(sum(lesions)),
               "candidates": int(sum(len(c.labels) for c in cases))}
    if confidence_interval:
        interval = bootstrap_mfroc(detections, lesions)
        metrics["mFROC_95ci"] = [interval.low, interval.high]
    return metrics, probabilities, curve


REVEALED_KS = (1, 2, 3)  # decisions fed to a review-state model before its pending candidates are scored


def pending_mfroc(model, cases: list[CaseCandidates], probabilities: list, ks=REVEALED_KS) -> float:
    """Of a review-state model (issue 19): the mean over k of the still-pending candidates' mFROC after its k most
    probable candidates (``probabilities``: nothing decided) are decided by their ground truth. What re-scoring is
    for, so training selects a review-state model's epoch on it as well as on the ordinary mFROC."""
    import numpy as np
    import torch

    from .froc import froc_curve, mean_sensitivity, pending_detections, top_k_revealed
    from ..inference.case_inputs import case_lesions

    device = next(model.parameters()).device
    inputs = []
    model.eval()
    with torch.inference_mode():
        for case in cases:
            cnn_logits, f = model.features(torch.from_numpy(case.images.astype(np.float32)).to(device),
                                           torch.from_numpy(case.masks.astype(np.float32)).to(device))
            inputs.append((cnn_logits, f, torch.from_numpy(case.priors).float().to(device)
                           if model.config.use_priors else None))
        scores = []
        for k in ks:
            detections, lesions = [], []
            for case, p, (cnn_logits, f, priors) in zip(cases, probabilities, inputs):
                revealed = top_k_revealed(p, k)
                states = torch.as_tensor(np.where(revealed, case.labels, -1), device=device)
                rescored = torch.sigmoid(model.head_logits(cnn_logits, f, priors, states)).cpu().numpy()
                found, left = pending_detections(rescored, case.labels, case.node_ids, revealed, case_lesions(case))
                detections.append(found)
                lesions.append(left)
            scores.append(mean_sensitivity(froc_curve(detections, lesions)))
    return float(np.mean(scores))


def evaluate(data: str | Path, model_path: str | Path, split: str = "test", fold: int = 0, device: str = "cpu") -> dict:
    from tqdm import tqdm

    from ..dataset.format import read_dataset
    from ..models import stage2  # noqa: F401  (registers the "stage2" model for load_model)
    from ..models.checkpoint import load_model, sha256_of
    from ..inference.case_inputs import case_lesions, load_case_candidates
    from ..inference.device import resolve_device

    device = resolve_device(device)
    model, config, payload = load_model(model_path, map_location=device)
    if payload["model"] != "stage2":
        raise ModelError(f"{Path(model_path).name} is a {payload['model']} model, not a stage-2 classifier.")
    model.to(device)
    dataset = read_dataset(data)
    case_ids = dataset.test_ids if split == "test" else dataset.split(fold)[1]
    if not case_ids:
        raise DatasetError(f"The {split} split of {dataset.name} has no cases; choose --split val --fold K.")
    cases = [load_case_candidates(dataset, c, config) for c in tqdm(case_ids, desc=f"patches ({split})")]
    metrics, probabilities, curve = evaluate_cases(model, cases, device, confidence_interval=True)
    return {"model": Path(model_path).name, "model_sha256": sha256_of(model_path), "dataset": dataset.name,
            "split": split, "fold": fold if split == "val" else None, "head": config.head, "use_pet": config.use_pet,
            "use_priors": config.use_priors, "metrics": metrics, "froc": curve.as_dict(),
            "probabilities": {c.case_id: [float(p) for p in probs] for c, probs in zip(cases, probabilities)},
            "truth": {c.case_id: {"labels": c.labels.tolist(), "node_ids": c.node_ids.tolist(),
                                  "n_lesions": int(case_lesions(c))} for c in cases}}


def main(args) -> int:
    from ..io.atomic import atomic_file
    from ..io.outputs import check_output

    out = check_output(args.out or Path(args.model).with_name(f"eval_cls_{args.split}.json"), kind="file",
                       extensions=(".json",), overwrite=args.overwrite,
                       inputs={"--data": args.data, "--model": args.model, "--identifier": getattr(args, "identifier", None)})
    report = evaluate(args.data, args.model, args.split, args.fold, args.device)
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    m = report["metrics"]
    low, high = m["mFROC_95ci"]
    print(f"{report['split']}: {m['patients']} patients, {m['lesions']} GTV_LN, {m['candidates']} candidates | "
          f"mFROC {m['mFROC']:.3f} [{low:.3f}, {high:.3f}] (sens@2/3/4/6 FP {m['sens@2FP']:.3f}/{m['sens@3FP']:.3f}/"
          f"{m['sens@4FP']:.3f}/{m['sens@6FP']:.3f}) | F1@0.5 {m['F1@0.5']:.3f} | best F1 {m['best_F1']['f1']:.3f} -> {out}")
    return 0
