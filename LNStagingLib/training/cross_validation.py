"""``lnstaging cv``: nested cross-validation of the three stages on a cohort's non-test cases.

Outer loop: the non-test cases are split into K folds (seeded); each outer fold is held out once. Inner loop: the
other cases are split again into inner folds, and each trainer validates on inner fold 0 (its best-epoch and
threshold choices never see the outer fold). Every outer fold is a derived cohort folder (its dataset.json lists the
outer fold as "test" and the inner folds; the case files are the original ones, linked), trained and evaluated
with the ordinary `lnstaging train` / `lnstaging evaluate` commands, so a fold reproduces by hand.

When every case has a patient.json and both labels occur, the outer folds (and each fold's inner folds) are
stratified by the patient label (metastasis yes/no), seeded, for every stage (one split, whatever --stages), so
that each test fold holds both classes whenever the cohort has at least as many cases of each class as folds; a
fold that still holds one class is named in the output (its own AUC is undefined) instead of a silent nan.

The patient stage is evaluated on the inputs it gets in use: its largest positive LN volume (paper 2, eq. 7) comes
from the pipeline, never from gtv_ln.nii.gz (which is > 0 exactly when a patient is positive, so a held-out fold
scored with it leaks the label: issue 29). In each outer fold the held-out patients' volumes are predicted by the
fold's stage-1 model + identifier (trained on the outer training cases only, in fold{k}/seg, as the seg stage
trains it), and the training patients' volumes are cross-fitted (``lnstaging predict-volumes --cross-fit``, one
group per inner fold: each predicted by a stage-1 model trained without it); the patient model trains on the
second file and is evaluated on the first. With --patient-args "--no-ln-volume" no volume is used.

Pooled over the outer folds (every case tested exactly once, by a model that never saw it): the stage-2 mFROC with
a 1000-bootstrap 95% CI over patients, the patient AUC with DeLong's 95% CI and a 1000-bootstrap CI over the pooled
predictions (plus sensitivity/specificity at each fold's threshold), each fold's class counts, and stage 1's Dice
and instance F per fold (mean and sd). Written to OUT/cv_summary.json; a fold whose evaluation file exists is not
redone (resumable), and a working folder made with another split is refused rather than mixed.
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


def outer_folds(case_ids: list[str], folds: int, seed: int, labels: dict[str, int] | None = None) -> list[list[str]]:
    """The non-test cases in ``folds`` groups of (almost) equal size, in a seeded random order; with ``labels``
    (case -> 0/1) each class is dealt round the folds separately (stratified), so the class shares match."""
    if folds < 2:
        raise DatasetError("Cross-validation needs at least 2 folds (--folds).")
    if len(case_ids) < folds:
        raise DatasetError(f"{len(case_ids)} non-test cases cannot make {folds} folds.")
    assignment = _deal(case_ids, folds, seed, labels)
    return [[c for c in case_ids if assignment[c] == k] for k in range(folds)]


def _deal(case_ids: list[str], folds: int, seed, labels: dict[str, int] | None = None) -> dict[str, int]:
    """case -> fold: seeded order, dealt round-robin; with labels, class by class (the deal continues where the
    previous class stopped, so fold sizes differ by at most one)."""
    import numpy as np  # not at import: `lnstaging --help` builds this parser

    rng = np.random.default_rng(seed)
    groups = [list(case_ids)] if labels is None else [[c for c in case_ids if labels[c] == v]
                                                      for v in sorted(set(labels[c] for c in case_ids))]
    assignment, dealt = {}, 0
    for group in groups:
        for i in rng.permutation(len(group)):
            assignment[group[i]] = dealt % folds
            dealt += 1
    return assignment


def patient_labels(dataset, case_ids: list[str]) -> dict[str, int] | None:
    """case -> metastasis (patient.json), or None when a case has no patient.json (then folds are not stratified)."""
    if not all(dataset.case(c).has("patient") for c in case_ids):
        return None
    return {c: dataset.case(c).metastasis for c in case_ids}


def fold_class_counts(groups: list[list[str]], labels: dict[str, int]) -> list[dict]:
    """Per outer fold: positive and negative test patients, and a note when the fold holds one class only."""
    return [_class_row(k, [labels[c] for c in group]) for k, group in enumerate(groups)]


def _class_row(fold: int, fold_labels: list[int]) -> dict:
    positive = int(sum(fold_labels))
    row = {"fold": fold, "positive": positive, "negative": len(fold_labels) - positive}
    if not positive or positive == len(fold_labels):
        row["note"] = (f"outer fold {fold} holds {len(fold_labels)} {'positive' if positive else 'negative'} "
                       "patient(s) only: its own AUC is undefined (its patients still count in the pooled AUC)")
    return row


def write_fold_cohort(dataset, held_out: list[str], inner_folds: int, seed: int, root: Path,
                      labels: dict[str, int] | None = None) -> Path:
    """A cohort folder whose test set is the held-out fold and whose folds split the rest (stratified by ``labels``
    when given); cases are linked."""
    from ..dataset.format import CASES_DIR, DATASET_JSON, write_description

    if (root / DATASET_JSON).is_file():
        previous = json.loads((root / DATASET_JSON).read_text()).get("test")
        if previous is not None and sorted(previous) != sorted(held_out):
            raise DatasetError(f"{root.parent} was made with another split (other --seed, --folds or cohort, or a "
                               "version that did not stratify by the patient label); choose a new --out instead of "
                               "mixing two splits.")

    root.mkdir(parents=True, exist_ok=True)
    link = root / CASES_DIR
    if not link.exists():
        link.symlink_to((dataset.root / CASES_DIR).resolve(), target_is_directory=True)
    rest = [c for c in dataset.trainval_ids if c not in held_out]
    folds = _deal(rest, max(1, min(inner_folds, len(rest))), [seed, len(held_out)], labels)
    case_ids = [c for c in dataset.case_ids if c in folds or c in held_out]
    write_description(root, name=f"{dataset.name}-cv", case_ids=case_ids, organ_labels=dataset.organ_labels,
                      organ_mapping=dataset.organ_mapping, folds=folds, test=list(held_out),
                      description=f"outer fold of lnstaging cv on {dataset.name}")
    return root


def _commands(stage: str, data: Path, run: Path, config: str, seed: int, extra: list[str],
              volumes: tuple[Path, Path] | None = None) -> tuple[list, list, Path]:
    """(train argv, evaluate argv, evaluation JSON) of one stage in one outer fold; ``volumes``: the patient stage's
    (training, held-out) LN volume files."""
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
        if volumes is not None:
            extra = [*extra, "--ln-volumes", str(volumes[0])]
            evaluate += ["--ln-volumes", str(volumes[1])]
    # called only while the fold has no evaluation: a model a failed run left behind is trained again
    return ["train", stage, *common, "--overwrite", *extra], evaluate, result


def uses_ln_volume(patient_extra: list[str]) -> bool:
    """Whether the patient model reads an LN volume (cv then makes the volumes; a given file is refused)."""
    if "--ln-volumes" in patient_extra:
        raise DatasetError("cv makes the patient stage's LN volumes itself (held-out: predicted; training: "
                           "cross-fitted): drop --ln-volumes from --patient-args.")
    return "--no-ln-volume" not in patient_extra


def pipeline_volume_commands(data: Path, fold_dir: Path, held_out: list[str], config: str, seed: int,
                             inner_folds: int, seg_extra: list[str]) -> tuple[list, tuple[Path, Path]]:
    """The commands that make one outer fold's LN volumes, each with the file that shows it is done, and the
    (training, held-out) volume files: the fold's stage-1 model (the seg stage's), cross-fitted volumes of the
    training cases, the held-out cases' volumes from the fold's model."""
    from .cross_fit import train_seg_command

    models, folder = fold_dir / "seg", fold_dir / "volumes"
    train_file, test_file = folder / "train_volumes.csv", folder / "test_volumes.csv"
    steps = [(train_seg_command(data, models, config, seed, seg_extra), models / "identifier.pt"),
             (["predict-volumes", "--data", str(data), "--cross-fit", str(max(2, inner_folds)), "--work",
               str(folder / "cross_fit"), "--config", config, "--seed", str(seed),
               f"--seg-args={shlex.join(seg_extra)}",  # "=": a lone "--pet" would read as an option
               "--out", str(train_file)], train_file),
             (["predict-volumes", "--data", str(data), "--cases", *held_out, "--models",
               f"seg={models / 'seg_model.pt'},identification={models / 'identifier.pt'}", "--out", str(test_file)],
              test_file)]
    return steps, (train_file, test_file)


def pooled_patient_summary(reports: list[dict]) -> dict:
    """Out-of-fold patient metrics: every case's probability from the fold model that never saw it, pooled.

    AUC with DeLong's 95% CI (needs 2 positive and 2 negative patients) and a 1000-bootstrap percentile CI over the
    pooled patients; sensitivity / specificity / balanced accuracy from the folds' confusion counts (each fold at
    its own threshold); per fold its class counts and its own AUC, or why it has none.
    """
    from ..evaluation.bootstrap import bootstrap_ci
    from ..evaluation.compare import delong_auc_ci
    from ..evaluation.metrics import roc_auc

    import numpy as np  # not at import: `lnstaging --help` builds this parser

    patients = [p for report in reports for p in report["patients"]]
    labels = np.array([p["label"] for p in patients], int)
    scores = np.array([p["probability"] for p in patients], float)
    positive = int(labels.sum())
    entry: dict = {"patients": len(patients), "positive": positive, "negative": len(labels) - positive,
                   "pooled": "out-of-fold: each patient scored once, by the fold model that never saw it"}
    per_fold, notes = [], []
    for k, report in enumerate(reports):
        row = _class_row(k, [p["label"] for p in report["patients"]])
        if "note" in row:
            row["auc"] = None
            notes.append(row["note"])
        else:
            row["auc"] = roc_auc([p["label"] for p in report["patients"]],
                                 [p["probability"] for p in report["patients"]])
        per_fold.append(row)
    entry["per_fold"] = per_fold
    if notes:
        entry["one_class_folds"] = notes
    if not positive or positive == len(labels):
        entry["auc"] = None
        entry["auc_not_computed"] = (f"all {len(labels)} pooled patients are "
                                     f"{'positive' if positive else 'negative'}: no AUC exists")
    else:
        entry["auc"] = roc_auc(labels, scores)
        try:
            entry["auc_95ci_delong"] = list(delong_auc_ci(labels, scores)[1:])
        except ValueError as error:
            entry["auc_95ci_delong_not_computed"] = str(error)
        # a resample holding one class gives nan and is left out (counted in n_valid)
        ci = bootstrap_ci(lambda idx: roc_auc(labels[idx], scores[idx]), len(labels))
        entry["auc_95ci_bootstrap"] = [ci.low, ci.high]
        entry["auc_bootstrap_valid_resamples"] = ci.n_valid
    confusion = {key: sum(int(r.get("confusion", {}).get(key, 0)) for r in reports) for key in ("tp", "fp", "tn", "fn")}
    if all("confusion" in r for r in reports):
        tp, fp, tn, fn = (confusion[k] for k in ("tp", "fp", "tn", "fn"))
        sensitivity = tp / (tp + fn) if tp + fn else None
        specificity = tn / (tn + fp) if tn + fp else None
        entry |= {"confusion": confusion, "sensitivity": sensitivity, "specificity": specificity,
                  "balanced_accuracy": (sensitivity + specificity) / 2 if None not in (sensitivity, specificity)
                  else None}
    return entry


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
        summary["patient"] = pooled_patient_summary(results["patient"])
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
    stages = [s for s in STAGES if s in stages]  # seg first: the patient stage's volumes use its model
    pipeline_volumes = "patient" in stages and uses_ln_volume(shlex.split(args.patient_args))
    if pipeline_volumes:  # the volumes need the identifier: refuse --phase seg before any training
        from .cross_fit import check_stage1_options

        check_stage1_options(shlex.split(args.seg_args))
    dataset = read_dataset(args.data)
    labels = patient_labels(dataset, dataset.trainval_ids)
    stratified = labels is not None and len(set(labels.values())) == 2
    if not stratified:
        labels = None
        if "patient" in stages:
            print("note: outer folds NOT stratified: " + ("some cases have no patient.json" if
                  patient_labels(dataset, dataset.trainval_ids) is None else "every case has the same patient label"))
    groups = outer_folds(dataset.trainval_ids, args.folds, args.seed, labels)
    counts = fold_class_counts(groups, labels) if labels else None
    if counts:
        for row in counts:
            print(f"outer fold {row['fold']}: {row['positive']} positive, {row['negative']} negative test patients"
                  + (f"  WARNING: {row['note']}" if "note" in row else ""))
    results: dict[str, list[dict]] = {stage: [] for stage in stages}
    for k, held_out in enumerate(groups):
        fold_dir = Path(args.out) / f"fold{k}"
        data = write_fold_cohort(dataset, held_out, args.inner_folds, args.seed, fold_dir / "data", labels)
        for stage in stages:
            volumes = None
            if stage == "patient" and pipeline_volumes:
                steps, volumes = pipeline_volume_commands(data, fold_dir, held_out, args.config, args.seed,
                                                          args.inner_folds, shlex.split(args.seg_args))
                for argv, done in steps:
                    if not done.is_file():
                        code = cli(argv)
                        if code:
                            raise DatasetError(f"outer fold {k}: 'lnstaging {' '.join(argv[:2])}' (LN volumes) "
                                               f"failed (exit {code}).")
            train, evaluate, result = _commands(stage, data, fold_dir / stage, args.config, args.seed,
                                                shlex.split(getattr(args, f"{stage}_args")), volumes)
            if not result.is_file():
                for argv in (train, evaluate):
                    code = cli(argv)
                    if code:
                        raise DatasetError(f"outer fold {k}: 'lnstaging {' '.join(argv[:2])}' failed (exit {code}).")
            results[stage].append(json.loads(result.read_text()))
    summary = {"dataset": dataset.name, "folds": args.folds, "inner_folds": args.inner_folds, "seed": args.seed,
               "config": args.config, "outer_folds": groups,
               "stratified_by_patient_label": stratified, "outer_fold_class_counts": counts,
               "patient_ln_volumes": None if "patient" not in stages else (
                   "pipeline: held-out patients predicted by the fold's stage-1 model + identifier (fold{k}/seg, "
                   "trained without them); training patients cross-fitted over the inner folds (lnstaging "
                   "predict-volumes --cross-fit)" if pipeline_volumes else "not used (--no-ln-volume)"),
               **pooled_summary(results)}
    out = Path(args.out) / "cv_summary.json"
    out.write_text(json.dumps(summary, indent=1, default=float))
    for stage in stages:
        print(f"{stage}: {json.dumps(summary.get(stage), default=float)}")
    for note in summary.get("patient", {}).get("one_class_folds", []):
        print(f"WARNING: {note}")
    print(f"summary written to {out}")
    return 0
