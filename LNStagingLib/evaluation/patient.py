"""``lnstaging evaluate patient``: metastasis-status metrics of a patient model on a cohort (paper 2, sec. IV-E).

Balanced accuracy, AUC, sensitivity, specificity (and accuracy) at a probability threshold, each with a
1000-bootstrap 95% CI over patients. The LN volume feature comes from a file of volumes the pipeline measured
(``--ln-volumes``: CSV case,volume_mm3 or a JSON object, from ``lnstaging predict-volumes``), which is the honest
end-to-end number; without it, from gtv_ln.nii.gz (ground-truth nodes: an upper bound, and on the phantoms, whose
positive patients are exactly those with a GTV_LN, the label itself). A model trained on predicted volumes is never
evaluated on ground-truth ones: --ln-volumes is then required.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..dataset.ln_volumes import read_ln_volumes
from ..errors import DatasetError, InputFileError, ModelError


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="cohort folder (docs/DATASET.md)")
    parser.add_argument("--model", required=True, help="checkpoint file (patient_model.pt) or catalogue model id")
    parser.add_argument("--split", default="test", choices=("test", "val", "trainval", "all"),
                        help="cases to evaluate: the held-out test list, the --fold validation cases, every non-test "
                             "case, or all cases (default: test)")
    parser.add_argument("--fold", type=int, default=0, help="fold for --split val")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold for a positive patient")
    parser.add_argument("--ln-volumes", metavar="FILE", help="largest positive LN volume per case (CSV case,volume_mm3 "
                        "or JSON {case: mm3}); default: from gtv_ln.nii.gz")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", metavar="FILE", help="write the JSON here (default: print it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def main(args) -> int:
    from ..dataset.format import read_dataset
    from ..io.outputs import check_output
    from ..pipeline import check_threshold
    from ..inference.device import resolve_device

    check_threshold(args.threshold)
    if args.out:
        check_output(args.out, kind="file", extensions=(".json",), overwrite=args.overwrite,
                     inputs={"--data": args.data, "--model": args.model, "--ln-volumes": args.ln_volumes})
    model, config, payload, sha = load_patient_model(args.model, resolve_device(args.device))
    require_volumes_like_training(payload.get("training_data", {}), config, args.ln_volumes)
    dataset = read_dataset(args.data)
    case_ids = select_cases(dataset, args.split, args.fold)
    volumes = read_ln_volumes(args.ln_volumes) if args.ln_volumes else None
    report = evaluate(model, config, dataset, case_ids, threshold=args.threshold, ln_volumes=volumes,
                      n_boot=args.n_bootstrap, seed=args.seed, device=args.device)
    report.update({"model": {"file": Path(args.model).name, "sha256": sha, "registry_name": payload["model"],
                             "training_data": payload.get("training_data", {})},
                   "dataset": dataset.name, "split": args.split,
                   "ln_volume_source": Path(args.ln_volumes).name if args.ln_volumes else "gtv_ln.nii.gz"})
    report = json_safe(report)
    text = json.dumps(report, indent=1, allow_nan=False)
    if args.out:
        write_json(Path(args.out), text)
        print(f"{len(case_ids)} patients: " + ", ".join(
            f"{k} {_fmt(v['value'])} [{_fmt(v['low'])}, {_fmt(v['high'])}]" for k, v in report["metrics"].items())
            + f" -> {args.out}")
    else:
        print(text)
    return 0


def require_volumes_like_training(training_data: dict, config, ln_volumes) -> None:
    """A model trained on predicted LN volumes is tested on predicted ones: gtv_ln.nii.gz is never read for it."""
    trained_on_predicted = str(training_data.get("ln_volume_source", "")).endswith("(predicted)")
    if getattr(config, "use_ln_volume", True) and trained_on_predicted and not ln_volumes:
        raise ModelError("This patient model was trained on predicted LN volumes; give --ln-volumes FILE (lnstaging "
                         "predict-volumes) for the evaluated cases: ground-truth volumes would give it the label.")


def json_safe(value):
    """Undefined metrics (nan, e.g. specificity without a negative patient) become null: strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_json(path: Path, text: str) -> None:
    from ..io.atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text + "\n")


def load_patient_model(model: str, device: str = "cpu"):
    """A checkpoint path, or a catalogue id (sha256-verified). Returns (model, config, payload, sha256)."""
    from ..models import patient  # noqa: F401  (registers the network)
    from ..models.catalogue import Catalogue
    from ..models.checkpoint import load_model, sha256_of

    path = Path(model)
    if not path.is_file() and (path.suffix.lower() in (".pt", ".pth", ".ckpt") or "/" in model or "\\" in model):
        raise InputFileError(f"Model file {model} does not exist; give a checkpoint file or a catalogue model id.")
    if path.is_file():
        net, config, payload = load_model(path, map_location=device)
        sha = sha256_of(path)
    else:
        catalogue = Catalogue.read()
        net, config, payload = catalogue.load(model, task="patient", map_location=device)
        sha = catalogue.get(model).sha256
    if payload["model"] != patient.REGISTRY_NAME:
        raise ModelError(f"{path.name} holds a {payload['model']!r} model, not a patient-level model.")
    return net.to(device).eval(), config, payload, sha


def select_cases(dataset, split: str, fold: int) -> list[str]:
    if split == "test":
        ids = list(dataset.test_ids)
    elif split == "val":
        ids = dataset.split(fold)[1]
    elif split == "trainval":
        ids = dataset.trainval_ids
    else:
        ids = list(dataset.case_ids)
    if not ids:
        raise DatasetError(f"The {split!r} split of {dataset.name} has no cases; choose another --split.")
    return ids


def evaluate(model, config, dataset, case_ids: list[str], *, threshold: float = 0.5, ln_volumes=None,
             n_boot: int = 1000, seed: int = 0, device: str = "cpu", progress=None) -> dict:
    """Per-patient probabilities and metrics with bootstrap CIs (JSON-ready)."""
    from ..inference.case_inputs import load_examples, predict_examples
    from .bootstrap import bootstrap_binary_metrics
    from .metrics import binary_metrics

    examples = load_examples(dataset, case_ids, config, progress, ln_volumes)
    probs = predict_examples(model, examples, device)
    labels = [e.label for e in examples]
    cis = bootstrap_binary_metrics(labels, probs, threshold, n_boot=n_boot, seed=seed)
    counts = binary_metrics(labels, probs, threshold)
    return {"n_patients": len(examples), "n_positive": int(sum(labels)), "threshold": threshold,
            "bootstrap": {"n": n_boot, "seed": seed, "level": 0.95},
            "metrics": {k: v.as_dict() for k, v in cis.items()},
            "confusion": {k: counts[k] for k in ("tp", "fp", "tn", "fn")},
            "patients": [{"case": e.case_id, "label": e.label, "probability": float(p),
                          "ln_volume_mm3": e.ln_volume_mm3} for e, p in zip(examples, probs)]}
