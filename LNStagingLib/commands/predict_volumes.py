"""``lnstaging predict-volumes``: each case's largest positive LN volume as the pipeline predicts it.

Paper 2 feeds its patient model (eq. 7) the volume of the largest lymph node that its own stage 1 segmented and its
instance identifier called positive, in training as in use. This runs the pipeline's stage 1 + identification on
every case of a cohort and writes CSV case,volume_mm3 for ``lnstaging train patient --ln-volumes`` and ``lnstaging
evaluate patient --ln-volumes``. Cases the pipeline cannot run stop the command with the reason (no partial file).

For the training set use ``--cross-fit K``: every non-test case is predicted by a stage-1 model trained without it
(K models trained here, LNStagingLib/training/cross_fit.py), so that the patient model trains on volumes like the
ones it will get in use; the test cases are predicted with ``--models`` (the stage-1 model trained on all of them).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ._common import add_model_arguments, add_overwrite_argument, make_progress, select_models


def register(sub) -> None:
    parser = sub.add_parser("predict-volumes",
                            help="largest positive LN volume per case from stage 1 + identification (paper 2, eq. 7)",
                            description=__doc__.split("\n\n")[1])
    parser.add_argument("--data", required=True, type=Path, help="cohort folder (docs/DATASET.md)")
    parser.add_argument("--out", required=True, type=Path, help="CSV to write (case,volume_mm3)")
    parser.add_argument("--cases", nargs="*", help="only these case ids (default: every case of --split)")
    parser.add_argument("--split", default="all", choices=("all", "test", "trainval"),
                        help="cases to predict: every case, the held-out test list of dataset.json, or the "
                             "non-test cases (default: all)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="identifier probability from which an instance counts as positive (default 0.5)")
    parser.add_argument("--cross-fit", type=int, metavar="K",
                        help="predict every non-test case with one of K stage-1 models trained here without it "
                             "(for 'train patient --ln-volumes'); --models is then not used")
    parser.add_argument("--work", type=Path,
                        help="with --cross-fit: folder for the K trainings (default: OUT's name + '_cross_fit'); "
                             "a group already predicted there is not redone")
    parser.add_argument("--config", default="small", choices=("tiny", "small", "paper"),
                        help="with --cross-fit: stage-1 network size (default small)")
    parser.add_argument("--seed", type=int, default=0, help="with --cross-fit: grouping and training seed")
    parser.add_argument("--seg-args", default="", metavar="ARGS",
                        help="with --cross-fit: extra options for 'lnstaging train seg', e.g. \"--pet --epochs 60\" "
                             "(use the options the deployed stage-1 model was trained with)")
    add_model_arguments(parser)
    add_overwrite_argument(parser, "file")
    parser.set_defaults(func=main)


def predict_volumes(dataset, case_ids, models, *, threshold: float = 0.5, device: str = "cpu", threads=None,
                    progress=None) -> dict[str, float]:
    """case id -> V_max_pLN (mm3) from the pipeline run with the stage-1 and identification models only."""
    from ..pipeline import ModelSelection, RunOptions, run_case
    from ..progress import Progress
    from .run_batch import case_inputs_from_dataset

    if models.seg is None or models.identification is None:
        raise ModelError("predict-volumes needs a stage-1 model and an instance identifier: "
                         "--models seg=...,identification=...")
    only = ModelSelection(seg=models.seg, identification=models.identification,
                          sha256={k: v for k, v in models.sha256.items() if k in ("seg", "identification")})
    options = RunOptions(models=only, device=device, threshold=threshold, threads=threads)
    progress = progress or Progress()
    volumes = {}
    for i, case_id in enumerate(case_ids):
        results, _ = run_case(case_inputs_from_dataset(dataset, case_id), options,
                              progress.sub(i / len(case_ids), (i + 1) / len(case_ids)))
        volumes[case_id] = float(results.patient.largest_positive_ln_volume_ml or 0.0) * 1000.0
    return volumes


def main(args) -> int:
    from ..dataset.format import read_dataset
    from ..dataset.ln_volumes import write_ln_volumes
    from ..errors import LNStagingError
    from ..io.outputs import check_output

    check_output(args.out, kind="file", overwrite=args.overwrite, extensions=(".csv",), inputs={"--data": args.data})
    dataset = read_dataset(args.data)
    if args.cross_fit is not None:
        volumes = _cross_fit(args, dataset)
    else:
        from ..evaluation.patient import select_cases

        if args.work or args.seg_args:
            raise LNStagingError("--work and --seg-args belong to --cross-fit: add --cross-fit K or drop them.")

        case_ids = args.cases or select_cases(dataset, args.split, 0)
        unknown = sorted(set(case_ids) - set(dataset.case_ids))
        if unknown:
            raise LNStagingError(f"case id(s) {', '.join(unknown)} are not in {args.data}: check --cases.")
        volumes = predict_volumes(dataset, case_ids, select_models(args.models), threshold=args.threshold,
                                  device=args.device, threads=args.threads,
                                  progress=make_progress(args, "predict-volumes"))
    write_ln_volumes(args.out, volumes)
    positive = sum(v > 0 for v in volumes.values())
    print(f"largest positive LN volume of {len(volumes)} cases written to {args.out} ({positive} with a positive node)")
    return 0


def _cross_fit(args, dataset) -> dict[str, float]:
    """Volumes of the non-test cases, each predicted by a stage-1 model trained without it."""
    import shlex

    from ..errors import LNStagingError
    from ..io.outputs import check_output
    from ..training.cross_fit import cross_fit_volumes

    if args.cases or args.split != "all":
        raise LNStagingError("--cases/--split and --cross-fit do not combine: cross-fitting predicts every non-test "
                             "case (predict the test cases with --models instead).")
    if args.models != "default":
        raise LNStagingError("--cross-fit trains its own stage-1 models: drop --models (or drop --cross-fit to "
                             "predict with given models).")
    out = Path(args.out)
    work = args.work or out.with_name(out.name.rsplit(".", 1)[0] + "_cross_fit")
    check_output(work, kind="folder", write_into=True, inputs={"--data": args.data},
                 option="--work")
    return cross_fit_volumes(dataset, args.cross_fit, work, config=args.config, seed=args.seed,
                             seg_args=shlex.split(args.seg_args), threshold=args.threshold, device=args.device,
                             threads=args.threads, progress=make_progress(args, "predict-volumes --cross-fit"))
