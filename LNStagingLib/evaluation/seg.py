"""``lnstaging evaluate seg``: stage-1 segmentation metrics of paper 2 (Table V) on a cohort split.

Per case: sliding-window probability (skipping zero-attention windows), instances (threshold, connected components,
minimum size), then
  class-agnostic (before identification): voxel Dice / recall / precision against all nodes, and instance
  recall / precision / F-measure at IoU >= 0.3 (evaluation/metrics.match_instances);
  class-aware (after identification, with --identifier): instances called positive against GTV_LN, instances
  called negative against the negative nodes, same metrics.
Voxel metrics are averaged over cases; instance counts are pooled over cases. Written as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DatasetError


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="cohort folder (docs/DATASET.md)")
    parser.add_argument("--model", required=True, help="segmentation checkpoint (seg_model.pt)")
    parser.add_argument("--identifier", help="identification checkpoint (identifier.pt) for the class-aware metrics")
    parser.add_argument("--split", default="test", choices=("test", "val"), help="held-out test cases or fold K's")
    parser.add_argument("--fold", type=int, default=0, help="the fold whose validation cases --split val uses")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold of the LN class")
    parser.add_argument("--min-volume", type=float, default=None, help="minimum instance volume in mm^3")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", help="metrics JSON (default: eval_seg_<split>.json next to the model)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing metrics JSON")


def main(args) -> int:
    from ..dataset.format import read_dataset
    from ..io.atomic import atomic_file
    from ..models import identification, unet  # noqa: F401  (register the networks before loading checkpoints)
    from ..models.checkpoint import load_model
    from ..progress import tqdm_progress
    from ..io.outputs import check_output
    from ..pipeline import check_threshold
    from ..inference.device import resolve_device

    out = check_output(args.out or Path(args.model).with_name(f"eval_seg_{args.split}.json"), kind="file",
                       extensions=(".json",), overwrite=args.overwrite,
                       inputs={"--data": args.data, "--model": args.model, "--identifier": getattr(args, "identifier", None)})
    check_threshold(args.threshold)
    device = resolve_device(args.device)
    dataset = read_dataset(args.data)
    case_ids = dataset.test_ids if args.split == "test" else dataset.split(args.fold)[1]
    if not case_ids:
        raise DatasetError(f"The {args.split} split of {dataset.name} is empty; choose another --split/--fold.")
    model, _, payload = load_model(args.model)
    identifier = load_model(args.identifier)[0] if args.identifier else None
    metrics = evaluate_cases(dataset, case_ids, model.to(device), identifier, threshold=args.threshold,
                             min_volume_mm3=args.min_volume, device=device, progress=tqdm_progress("evaluate seg"))
    metrics |= {"split": args.split, "fold": args.fold if args.split == "val" else None,
                "model": Path(args.model).name, "identifier": Path(args.identifier).name if args.identifier else None}
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    agnostic = metrics["class_agnostic"]
    print(f"Dice {agnostic['dice']:.3f}  instance F {agnostic['f_measure']:.3f} (recall {agnostic['recall']:.3f}, "
          f"precision {agnostic['precision']:.3f}) on {len(case_ids)} cases -> {out}")
    return 0


def voxel_metrics(prediction: np.ndarray, reference: np.ndarray) -> dict:
    """Dice, recall, precision of two binary masks (NaN where undefined)."""
    from .metrics import dice

    p, r = prediction != 0, reference != 0
    tp = int(np.logical_and(p, r).sum())
    return {"dice": dice(p, r), "recall": tp / r.sum() if r.any() else float("nan"),
            "precision": tp / p.sum() if p.any() else float("nan")}


def _relabel(labels: np.ndarray, keep: set[int]) -> np.ndarray:
    return np.where(np.isin(labels, list(keep)), labels, 0)


def case_metrics(predicted: np.ndarray, nodes: np.ndarray, positive_ids: set[int],
                 identified: dict[int, float] | None = None) -> dict:
    """Metrics of one case. ``predicted``/``nodes`` are instance label maps; ``identified`` maps predicted
    instance id -> positive probability (>= 0.5 = positive)."""
    from .metrics import match_instances

    result = {"class_agnostic": voxel_metrics(predicted, nodes) | {"match": match_instances(predicted, nodes)}}
    if identified is not None:
        node_ids = {int(v) for v in np.unique(nodes) if v != 0}
        called = {k for k, p in identified.items() if p >= 0.5}
        for name, pred_keep, ref_keep in (("positive", called, positive_ids),
                                          ("negative", set(identified) - called, node_ids - positive_ids)):
            pred, ref = _relabel(predicted, pred_keep), _relabel(nodes, ref_keep)
            result[name] = voxel_metrics(pred, ref) | {"match": match_instances(pred, ref)}
    return result


def summarise(per_case: list[dict]) -> dict:
    """Mean voxel metrics over cases (ignoring NaN) and pooled instance metrics."""
    from .metrics import pooled_instance_metrics

    summary = {}
    for group in per_case[0] if per_case else []:
        rows = [c[group] for c in per_case]
        voxel = {k: float(np.nanmean([r[k] for r in rows])) if any(np.isfinite(r[k]) for r in rows) else float("nan")
                 for k in ("dice", "recall", "precision")}
        summary[group] = {f"voxel_{k}" if k != "dice" else k: v for k, v in voxel.items()} | \
            pooled_instance_metrics([r["match"] for r in rows])
    return summary


def case_counts(case_id: str, metrics: dict) -> dict:
    """One case's numbers that pooled metrics are made of (JSON-ready): Dice and instance tp / n_pred / n_ref."""
    out = {"case": case_id}
    for group, m in metrics.items():
        match = m["match"]
        out[group] = {"dice": m["dice"], "tp": match.tp, "n_pred": match.n_pred, "n_ref": match.n_ref}
    return out


def pooled_from_counts(rows: list[dict], group: str) -> dict:
    """Mean Dice and pooled instance recall / precision / F of the cases ``rows`` (from case_counts)."""
    tp = sum(r[group]["tp"] for r in rows)
    n_pred = sum(r[group]["n_pred"] for r in rows)
    n_ref = sum(r[group]["n_ref"] for r in rows)
    dices = [r[group]["dice"] for r in rows if r[group]["dice"] == r[group]["dice"]]
    return {"dice": float(np.mean(dices)) if dices else float("nan"),
            "recall": tp / n_ref if n_ref else float("nan"), "precision": tp / n_pred if n_pred else float("nan"),
            "f_measure": 2 * tp / (n_pred + n_ref) if n_pred + n_ref else float("nan")}


def bootstrap_seg_metrics(rows: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """95% CIs (1000 patient resamples) of each group's Dice and pooled instance metrics."""
    from .bootstrap import bootstrap_metrics

    out = {}
    for group in (g for g in rows[0] if g != "case") if rows else ():
        cis = bootstrap_metrics(lambda idx, g=group: pooled_from_counts([rows[i] for i in idx], g), len(rows),
                                ("dice", "recall", "precision", "f_measure"), n_boot, seed)
        out[group] = {k: [v.low, v.high] for k, v in cis.items()}
    return out


def evaluate_cases(dataset, case_ids: list[str], model, identifier=None, *, threshold: float = 0.5,
                   min_volume_mm3: float | None = None, device: str = "cpu", progress=None) -> dict:
    """Metrics of a segmentation model (and optional identifier) over the given cases."""
    import SimpleITK as sitk

    from ..candidates.instances import DEFAULT_MIN_VOLUME_MM3, instances_from_probability
    from ..inference.segmentation import segment_lymph_nodes
    from ..models.identification import identify_instances
    from ..models.seg_inputs import network_channels
    from ..progress import Progress
    from ..inference.case_inputs import case_attention

    progress = progress or Progress()
    min_volume = DEFAULT_MIN_VOLUME_MM3 if min_volume_mm3 is None else min_volume_mm3
    per_case, windows = [], {"windows": 0, "run": 0}
    for i, case_id in enumerate(case_ids):
        sub = progress.sub(i / len(case_ids), (i + 1) / len(case_ids))
        files = dataset.case(case_id)
        ct = files.load("ct")
        pet = files.load("pet") if model.config.use_pet else None
        attention = case_attention(dataset, files, ct) if model.config.use_attention else None
        probability, stats = segment_lymph_nodes(model, ct, attention, pet, device=device, progress=sub)
        windows = {k: windows[k] + stats[k] for k in windows}
        predicted = sitk.GetArrayFromImage(instances_from_probability(probability, threshold, min_volume))
        gtv = sitk.GetArrayFromImage(files.load("gtv_ln"))
        nodes = sitk.GetArrayFromImage(files.load("lymph_nodes")) if files.has("lymph_nodes") else gtv
        positive = {int(v) for v in np.unique(gtv) if v != 0}
        identified = None
        if identifier is not None:
            identified = identify_instances(identifier, network_channels(identifier.config, ct, pet), predicted)
        per_case.append(case_metrics(predicted, nodes, positive, identified))
    summary = summarise(per_case)
    counts = [case_counts(case_id, metrics) for case_id, metrics in zip(case_ids, per_case)]
    return summary | {"n_cases": len(case_ids), "threshold": threshold, "min_volume_mm3": min_volume,
                      "iou_threshold": 0.3, "sliding_windows": windows, "per_case": counts,
                      "ci95": bootstrap_seg_metrics(counts)}
