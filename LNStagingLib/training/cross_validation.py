"""``lnstaging cv``: nested cross-validation of the three stages on a cohort's non-test cases.

Outer loop: the non-test cases are split into K folds (seeded); each outer fold is held out once. Inner loop: the
other cases are split again into inner folds, and each trainer validates on inner fold 0 (its best-epoch and
threshold choices never see the outer fold). Every outer fold is a derived cohort folder (its dataset.json lists the
outer fold as "test" and the inner folds; the case files are the original ones, linked), trained and evaluated
with the ordinary `lnstaging train` / `lnstaging evaluate` commands, so a fold reproduces by hand.

Pooled over the outer folds (every case tested exactly once, by a model that never saw it): the stage-2 mFROC with
a 1000-bootstrap 95% CI over patients, the patient AUC with DeLong's 95% CI, and stage 1's Dice and instance F per
fold (mean and sd). Written to OUT/cv_summary.json; a fold whose evaluation file exists is not redone (resumable).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ..errors import DatasetError

STAGES = ("seg", "cls", "patient")


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="cohort folder (docs/DATASET.md)")
    parser.add_argument("--out", required=True, type=Path, help="working folder: one sub-folder per outer fold")
    parser.add_argument("--folds", type=int, default=5, help="outer folds (default 5)")
    parser.add_argument("--inner-folds", type=int, default=4,
                        help="inner folds of each outer training set; inner fold 0 validates (default 4)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of seg,cls,patient")
    parser.add_argument("--config", default="small", choices=("tiny", "small", "paper"))
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    for stage in STAGES:
        parser.add_argument(f"--{stage}-args", default="", metavar="ARGS",
                            help=f"extra options for 'lnstaging train {stage}', e.g. \"--epochs 5\"")


def outer_folds(case_ids: list[str], folds: int, seed: int) -> list[list[str]]:
    """The non-test cases in ``folds`` groups of (almost) equal size, in a seeded random order."""
    import numpy as np  # not at import: `lnstaging --help` builds this parser

    if folds < 2:
        raise DatasetError("Cross-validation needs at least 2 folds (--folds).")
    if len(case_ids) < folds:
        raise DatasetError(f"{len(case_ids)} non-test cases cannot make {folds} folds.")
    order = list(np.random.default_rng(seed).permutation(len(case_ids)))
    return [[case_ids[i] for i in sorted(order[k::folds])] for k in range(folds)]


def write_fold_cohort(dataset, held_out: list[str], inner_folds: int, seed: int, root: Path) -> Path:
    """A cohort folder whose test set is the held-out fold and whose folds split the rest; cases are linked."""
    import numpy as np  # not at import: `lnstaging --help` builds this parser

    from ..dataset.format import CASES_DIR, write_description

    root.mkdir(parents=True, exist_ok=True)
    link = root / CASES_DIR
    if not link.exists():
        link.symlink_to((dataset.root / CASES_DIR).resolve(), target_is_directory=True)
    rest = [c for c in dataset.trainval_ids if c not in held_out]
    order = np.random.default_rng([seed, len(held_out)]).permutation(len(rest))
    folds = {rest[i]: k % max(1, min(inner_folds, len(rest))) for k, i in enumerate(order)}
    case_ids = [c for c in dataset.case_ids if c in folds or c in held_out]
    write_description(root, name=f"{dataset.name}-cv", case_ids=case_ids, organ_labels=dataset.organ_labels,
                      organ_mapping=dataset.organ_mapping, folds=folds, test=list(held_out),
                      description=f"outer fold of lnstaging cv on {dataset.name}")
    return root


def _commands(stage: str, data: Path, run: Path, config: str, seed: int, extra: list[str]) -> tuple[list, list, Path]:
    """(train argv, evaluate argv, evaluation JSON) of one stage in one outer fold."""
    common = ["--data", str(data), "--out", str(run), "--config", config, "--fold", "0", "--seed", str(seed)]
    if stage == "seg":
        result = run / "eval_seg_test.json"
        evaluate = ["evaluate", "seg", "--data", str(data), "--model", str(run / "seg_model.pt"), "--split", "test",
                    "--out", str(result)]
        if "--phase" not in extra or extra[extra.index("--phase") + 1:][:1] != ["seg"]:  # the identifier was trained
            evaluate += ["--identifier", str(run / "identifier.pt")]
    elif stage == "cls":
        result = run / "eval_cls_test.json"
        evaluate = ["evaluate", "cls", "--data", str(data), "--model", str(run / "cls_model.pt"), "--split", "test",
                    "--out", str(result)]
    else:
        result = run / "eval_patient_test.json"
        evaluate = ["evaluate", "patient", "--data", str(data), "--model", str(run / "patient_model.pt"),
                    "--split", "test", "--out", str(result)]
    # called only while the fold has no evaluation: a model a failed run left behind is trained again
    return ["train", stage, *common, "--overwrite", *extra], evaluate, result


def pooled_summary(results: dict[str, list[dict]]) -> dict:
    """Pool the outer folds' evaluations: mFROC (bootstrap CI), patient AUC (DeLong CI), stage-1 per-fold mean/sd."""
    import numpy as np  # not at import: `lnstaging --help` builds this parser

    from ..evaluation.compare import delong_auc_ci
    from ..evaluation.froc import bootstrap_mfroc, candidate_detections

    summary: dict = {}
    if results.get("cls"):
        detections, lesions = [], []
        for report in results["cls"]:
            for case_id, probabilities in report["probabilities"].items():
                truth = report["truth"][case_id]
                detections.append(candidate_detections(probabilities, truth["labels"], truth["node_ids"]))
                lesions.append(truth["n_lesions"])
        interval = bootstrap_mfroc(detections, lesions)
        summary["cls"] = {"mFROC": interval.value, "mFROC_95ci": [interval.low, interval.high],
                          "patients": len(lesions), "lesions": int(sum(lesions)),
                          "per_fold_mFROC": [r["metrics"]["mFROC"] for r in results["cls"]]}
    if results.get("patient"):
        patients = [p for report in results["patient"] for p in report["patients"]]
        labels = [p["label"] for p in patients]
        scores = [p["probability"] for p in patients]
        entry = {"patients": len(patients), "positive": int(sum(labels)), "negative": len(labels) - int(sum(labels))}
        try:
            auc, low, high = delong_auc_ci(labels, scores)
            entry |= {"auc": auc, "auc_95ci_delong": [low, high]}
        except ValueError as error:
            entry["auc_not_computed"] = str(error)
        summary["patient"] = entry
    if results.get("seg"):
        values = {key: [r["class_agnostic"][key] for r in results["seg"]] for key in ("dice", "f_measure")}
        summary["seg"] = {f"{key}_per_fold": v for key, v in values.items()} | {
            f"{key}_mean": float(np.nanmean(v)) for key, v in values.items()} | {
            f"{key}_sd": float(np.nanstd(v, ddof=1)) if len(v) > 1 else float("nan") for key, v in values.items()}
    return summary


def main(args) -> int:
    from ..cli import main as cli
    from ..dataset.format import read_dataset

    from ..io.outputs import check_output

    check_output(args.out, kind="folder", write_into=True, inputs={"--data": args.data})
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise DatasetError(f"Unknown stage(s) {', '.join(unknown)} in --stages; use seg, cls, patient.")
    dataset = read_dataset(args.data)
    groups = outer_folds(dataset.trainval_ids, args.folds, args.seed)
    results: dict[str, list[dict]] = {stage: [] for stage in stages}
    for k, held_out in enumerate(groups):
        fold_dir = Path(args.out) / f"fold{k}"
        data = write_fold_cohort(dataset, held_out, args.inner_folds, args.seed, fold_dir / "data")
        for stage in stages:
            train, evaluate, result = _commands(stage, data, fold_dir / stage, args.config, args.seed,
                                                shlex.split(getattr(args, f"{stage}_args")))
            if not result.is_file():
                for argv in (train, evaluate):
                    code = cli(argv)
                    if code:
                        raise DatasetError(f"outer fold {k}: 'lnstaging {' '.join(argv[:2])}' failed (exit {code}).")
            results[stage].append(json.loads(result.read_text()))
    summary = {"dataset": dataset.name, "folds": args.folds, "inner_folds": args.inner_folds, "seed": args.seed,
               "config": args.config, "outer_folds": groups, **pooled_summary(results)}
    out = Path(args.out) / "cv_summary.json"
    out.write_text(json.dumps(summary, indent=1, default=float))
    for stage in stages:
        print(f"{stage}: {json.dumps(summary.get(stage), default=float)}")
    print(f"summary written to {out}")
    return 0
