#!/usr/bin/env python
"""`lnstaging run-batch`'s engine on 1 vs 2 Dask worker processes (an embedded LocalCluster on 127.0.0.1): the same
8-case phantom cohort, wall time of each, their ratio, peak resident memory of every worker process, and a check that
both runs wrote identical results (candidate table, patient result, GTV_LN voxels).

  python benchmarks/batch_scaling_benchmark.py [--cases 8] [--size small] [--models default] [--threads 1]

--models as in run-batch ('default' = the catalogue's demo weights). Each run starts its own cluster (worker start-up
and imports are part of the time, as they are for a user). Other people's jobs share the cores: the load average
before and after each run is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker_peak_rss_mb() -> float:
    """Runs on a worker: the peak resident memory of that worker process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(cohort: Path, out: Path, workers: int, models: str, threads: int) -> dict:
    import logging

    from distributed import Client

    from LNStagingLib.commands._common import select_models
    from LNStagingLib.commands.run_batch import case_inputs_from_dataset
    from LNStagingLib.dataset.format import read_dataset
    from LNStagingLib.pipeline import RunOptions
    from LNStagingLib.scaling import batch, clusters

    logging.getLogger("distributed").setLevel(logging.ERROR)
    dataset = read_dataset(cohort)
    options = RunOptions(models=select_models(models), threads=threads)
    jobs = [(c, case_inputs_from_dataset(dataset, c), out, options) for c in dataset.case_ids]
    load_before = os.getloadavg()
    t = time.perf_counter()
    cluster = clusters.start_local_cluster(clusters.local_sizing(workers))
    with Client(cluster) as client:
        outcomes = batch.run_cases(client, jobs, out)
        peaks = sorted(client.run(worker_peak_rss_mb).values())
    cluster.close()
    seconds = time.perf_counter() - t
    failed = {c: why for c, why, _ in outcomes if why}
    return {"workers": workers, "seconds": round(seconds, 1), "failed": failed,
            "case_seconds": {c: round(s, 1) for c, _, s in sorted(outcomes)},
            "worker_peak_rss_mb": [round(p) for p in peaks],
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}


def results_of(out: Path, case_ids) -> dict:
    import SimpleITK as sitk

    found = {}
    for case_id in case_ids:
        case = out / case_id
        gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "gtv_ln.nii.gz")))
        found[case_id] = ((case / "candidates.csv").read_text(), (case / "patient.json").read_text(), gtv.tobytes())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--size", default="small", help="phantom size (small, medium, benchmark or NXxNYxNZ)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--models", default="default")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from LNStagingLib.phantom.cohort import write_cohort

    with tempfile.TemporaryDirectory(prefix="lnstaging-batch-bench-") as tmp:
        cohort = write_cohort(Path(tmp) / "cohort", seed=args.seed, cases=args.cases, size=args.size, folds=1,
                              test_fraction=0.0)
        one = run(cohort, Path(tmp) / "one", 1, args.models, args.threads)
        two = run(cohort, Path(tmp) / "two", 2, args.models, args.threads)
        case_ids = [f"case{i:03d}" for i in range(args.cases)]
        identical = not one["failed"] and not two["failed"] and \
            results_of(Path(tmp) / "one", case_ids) == results_of(Path(tmp) / "two", case_ids)
    print(json.dumps({"cases": args.cases, "size": args.size, "models": args.models, "threads_per_case": args.threads,
                      "cores": os.cpu_count(), "one_worker": one, "two_workers": two,
                      "time_ratio_1_over_2": round(one["seconds"] / two["seconds"], 2),
                      "identical_results": identical}, indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
