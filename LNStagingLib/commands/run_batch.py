"""``lnstaging run-batch``: the pipeline over a cohort in the data set format, resumable, failure-tolerant.

Each case goes to OUT/<case_id>/ (written atomically, so a folder that exists is complete and is skipped on a
re-run; --overwrite runs it again, except a case that holds a review). A failing case is recorded in
OUT/batch_summary.json (written atomically) with its one-line reason and the rest continue. OUT may neither be nor
contain the cohort or one of its cases (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import NOT_FOR_CLINICAL_USE
from ..errors import LNStagingError, OutputError
from ..io.atomic import atomic_file
from ..io.outputs import MB, check_output, input_bytes, review_folders
from ._common import add_model_arguments, add_overwrite_argument, select_models


def register(sub):
    parser = sub.add_parser("run-batch", help="run the pipeline on every case of a cohort folder (resumable)")
    parser.add_argument("--data", required=True, type=Path, help="cohort folder in the data set format (docs/DATASET.md)")
    parser.add_argument("--out", required=True, type=Path, help="output folder: one results folder per case")
    parser.add_argument("--workers", type=int, default=1, help="cases run in parallel (processes; default 1)")
    parser.add_argument("--cases", nargs="*", help="only these case ids")
    parser.add_argument("--threshold", type=float, default=0.5)
    add_model_arguments(parser)
    add_overwrite_argument(parser, "run finished cases again; a case holding a review is kept")
    parser.set_defaults(func=main)


def case_inputs_from_dataset(dataset, case_id: str):
    """A cohort case as pipeline inputs; only files that exist are given (no ground truth is read)."""
    from ..pipeline import CaseInputs

    case = dataset.case(case_id)
    optional = {key: case.path(key) if case.has(key) else None for key in ("organs", "tumor")}
    return CaseInputs(ct=case.path("ct"), pet=case.path("pet"), organs=optional["organs"], tumor=optional["tumor"],
                      organ_mapping=dataset.organ_mapping)


def _run_one(case_id: str, inputs, out: Path, options,
             overwrite: bool = False) -> tuple[str, str | None, float]:
    from ..pipeline import run_to_folder

    t = time.perf_counter()
    try:
        run_to_folder(inputs, out / case_id, options, overwrite=overwrite)
        return case_id, None, time.perf_counter() - t
    except LNStagingError as error:
        return case_id, str(error), time.perf_counter() - t
    except Exception as error:  # one case's bug must not stop a night's batch; recorded, not hidden
        return case_id, f"internal error {type(error).__name__}: {error}", time.perf_counter() - t


def read_summary(path: Path) -> dict:
    """The previous batch_summary.json, or {} when there is none; a corrupt one is refused (it holds the failures)."""
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict) or not all(isinstance(summary.get(k, {}), (dict, list))
                                                    for k in ("finished", "failed", "seconds")):
            raise ValueError("not a batch summary")
        return summary
    except (OSError, ValueError) as error:
        raise OutputError(f"{path} cannot be read ({type(error).__name__}): move it away (the finished case folders "
                          "are kept) and run again.") from None


def main(args) -> int:
    from ..dataset.format import read_dataset
    from ..pipeline import RunOptions

    dataset = read_dataset(args.data)
    RunOptions(threshold=args.threshold, threads=args.threads)
    if args.workers is None or args.workers < 1:
        raise LNStagingError(f"--workers {args.workers} is not a process count: give 1 or more.")
    wanted = args.cases or dataset.case_ids
    unknown = sorted(set(wanted) - set(dataset.case_ids))
    if unknown:
        raise LNStagingError(f"case id(s) {', '.join(unknown)} are not in {args.data}: check --cases.")
    inputs = [("--data", args.data), *((f"case {c}", dataset.case(c).root) for c in dataset.case_ids)]
    needed = sum(input_bytes([dataset.case(c).path("ct"), dataset.case(c).path("pet")]) for c in wanted) + 10 * MB
    check_output(args.out, kind="folder", write_into=True, inputs=inputs, needed_bytes=needed)
    previous = read_summary(args.out / "batch_summary.json")
    options = RunOptions(models=select_models(args.models), device=args.device, threshold=args.threshold,
                         threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    done = [c for c in wanted if (args.out / c / "candidates.json").is_file()]
    if args.overwrite:
        reviewed = [c for c in done if review_folders(args.out / c)]
        if reviewed:
            print(f"Kept (they hold a review): {', '.join(reviewed)}.")
        done = reviewed
    todo = [c for c in wanted if c not in done]
    print(f"{len(wanted)} cases: {len(done)} already finished (skipped), {len(todo)} to run.")
    jobs = [(c, case_inputs_from_dataset(dataset, c), args.out, options, args.overwrite) for c in todo]
    outcomes = []
    if args.workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(_run_one, *zip(*jobs)))
    else:
        for job in jobs:
            outcomes.append(_run_one(*job))
            print(f"  {job[0]}: {'ok' if outcomes[-1][1] is None else 'FAILED: ' + outcomes[-1][1]}")
    failed = {c: why for c, why, _ in outcomes if why is not None}
    summary_path = args.out / "batch_summary.json"
    summary = {
        "disclaimer": NOT_FOR_CLINICAL_USE,
        "finished": sorted(set(done) | {c for c, why, _ in outcomes if why is None}),
        "failed": {**{c: w for c, w in previous.get("failed", {}).items() if c not in {o[0] for o in outcomes}}, **failed},
        "seconds": {**previous.get("seconds", {}), **{c: round(s, 2) for c, _, s in outcomes}},
    }
    with atomic_file(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    print(f"Finished {len(summary['finished'])}/{len(wanted)}; failed {len(failed)}. Summary: {summary_path}")
    return 1 if failed else 0
