"""``lnstaging run-batch``: the pipeline over a cohort in the data set format, resumable, failure-tolerant.

Each case goes to OUT/<case_id>/ (written atomically, so a folder that exists is complete and is skipped on a
re-run). A failing case is recorded in OUT/batch_summary.json with its one-line reason and the rest continue.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .. import NOT_FOR_CLINICAL_USE
from ..errors import LNStagingError
from ..pipeline import CaseInputs, RunOptions, run_to_folder
from ._common import add_model_arguments, select_models


def register(sub):
    parser = sub.add_parser("run-batch", help="run the pipeline on every case of a cohort folder (resumable)")
    parser.add_argument("--data", required=True, type=Path, help="cohort folder in the data set format (docs/DATASET.md)")
    parser.add_argument("--out", required=True, type=Path, help="output folder: one results folder per case")
    parser.add_argument("--workers", type=int, default=1, help="cases run in parallel (processes; default 1)")
    parser.add_argument("--cases", nargs="*", help="only these case ids")
    parser.add_argument("--threshold", type=float, default=0.5)
    add_model_arguments(parser)
    parser.set_defaults(func=main)


def case_inputs_from_dataset(dataset, case_id: str) -> CaseInputs:
    """A cohort case as pipeline inputs; only files that exist are given (no ground truth is read)."""
    case = dataset.case(case_id)
    optional = {key: case.path(key) if case.has(key) else None for key in ("organs", "tumor")}
    return CaseInputs(ct=case.path("ct"), pet=case.path("pet"), organs=optional["organs"], tumor=optional["tumor"],
                      organ_mapping=dataset.organ_mapping)


def _run_one(case_id: str, inputs: CaseInputs, out: Path, options: RunOptions) -> tuple[str, str | None, float]:
    t = time.perf_counter()
    try:
        run_to_folder(inputs, out / case_id, options)
        return case_id, None, time.perf_counter() - t
    except LNStagingError as error:
        return case_id, str(error), time.perf_counter() - t
    except Exception as error:  # one case's bug must not stop a night's batch; recorded, not hidden
        return case_id, f"internal error {type(error).__name__}: {error}", time.perf_counter() - t


def main(args) -> int:
    from ..dataset.format import read_dataset

    dataset = read_dataset(args.data)
    options = RunOptions(models=select_models(args.models), device=args.device, threshold=args.threshold,
                         threads=args.threads)
    wanted = args.cases or dataset.case_ids
    unknown = sorted(set(wanted) - set(dataset.case_ids))
    if unknown:
        raise LNStagingError(f"case id(s) {', '.join(unknown)} are not in {args.data}: check --cases.")
    args.out.mkdir(parents=True, exist_ok=True)
    done = [c for c in wanted if (args.out / c / "candidates.json").is_file()]
    todo = [c for c in wanted if c not in done]
    print(f"{len(wanted)} cases: {len(done)} already finished (skipped), {len(todo)} to run.")
    jobs = [(c, case_inputs_from_dataset(dataset, c), args.out, options) for c in todo]
    outcomes = []
    if args.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(_run_one, *zip(*jobs)))
    else:
        for job in jobs:
            outcomes.append(_run_one(*job))
            print(f"  {job[0]}: {'ok' if outcomes[-1][1] is None else 'FAILED: ' + outcomes[-1][1]}")
    failed = {c: why for c, why, _ in outcomes if why is not None}
    summary_path = args.out / "batch_summary.json"
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary = {
        "disclaimer": NOT_FOR_CLINICAL_USE,
        "finished": sorted(set(done) | {c for c, why, _ in outcomes if why is None}),
        "failed": {**{c: w for c, w in previous.get("failed", {}).items() if c not in {o[0] for o in outcomes}}, **failed},
        "seconds": {**previous.get("seconds", {}), **{c: round(s, 2) for c, _, s in outcomes}},
    }
    summary_path.write_text(json.dumps(summary, indent=1))
    print(f"Finished {len(summary['finished'])}/{len(wanted)}; failed {len(failed)}. Summary: {summary_path}")
    return 1 if failed else 0
