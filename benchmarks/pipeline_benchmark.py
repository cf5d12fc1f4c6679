#!/usr/bin/env python
"""The whole `lnstaging run` on a benchmark-size phantom PET/CT (default 512 x 512 x 300) with the catalogue's
default models, on the CPU: total time, per-step timings (from provenance.json) and peak resident memory.

With --naive the same case is also run the naive way in the same invocation (stage 1 over every sliding window,
skip_empty_windows=False) and the two outputs are compared voxel for voxel.

  python benchmarks/pipeline_benchmark.py [--size 512x512x300] [--naive] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(case: Path, out: Path, skip: bool, threads: int, models: str = "default", device: str = "cpu") -> dict:
    """One pipeline run in a fresh process (OMP_NUM_THREADS = torch threads) with the --models choice ``models`` on
    ``device`` (cpu or cuda); returns its timings, peak RSS, the CPU seconds it used (user + system of all its
    threads: what the run costs whatever else shares the cores), the peak RSS and CPU seconds of each progress step
    (sampled every 50 ms, digits in the step's message replaced by #), and the machine's load average before and
    after (other jobs share the cores)."""
    code = f"""
import json, re, resource, sys, threading, time, torch
torch.set_num_threads({threads})
from LNStagingLib.commands._common import select_models
from LNStagingLib.pipeline import CaseInputs, RunOptions, run_to_folder
from LNStagingLib.progress import Progress

steps = {{}}  # step message -> [peak RSS in MB, CPU seconds at its start, CPU seconds spent in it]
current = ["start"]
def rss_mb():  # Linux: the current RSS; elsewhere the peak so far (ru_maxrss: KB on Linux, bytes on macOS)
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
def enter(fraction, message):
    label, now = re.sub(r"[0-9]+", "#", message) or current[0], time.process_time()
    if label != current[0]:
        steps[current[0]][2] += now - steps[current[0]][1]
        steps.setdefault(label, [None, 0.0, 0.0])[1] = now
        current[0] = label
steps["start"] = [None, time.process_time(), 0.0]
done = threading.Event()
def sample():
    while not done.wait(0.05):
        row = steps[current[0]]
        row[0] = max(row[0] or 0.0, rss_mb())
threading.Thread(target=sample, daemon=True).start()

case = {str(case)!r}
inputs = CaseInputs(ct=case + '/ct.nii.gz', pet=case + '/pet.nii.gz', organs=case + '/organs.nii.gz',
                    organ_mapping='pdac20', tumor=case + '/tumor.nii.gz')
t, cpu = time.perf_counter(), time.process_time()
results = run_to_folder(inputs, {str(out)!r}, RunOptions(models=select_models({models!r}), skip_empty_windows={skip},
                                                         device={device!r}), progress=Progress(enter))
seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
enter(1.0, "end")
done.set()
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu, "candidates": len(results.candidates),
                  "timings": results.provenance["timings_s"], "stage1": results.provenance.get("stage1_windows"),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "steps": {{k: {{"peak_rss_mb": None if v[0] is None else round(v[0]), "cpu_seconds": round(v[2], 2)}}
                            for k, v in steps.items() if k != "end"}}}}))
"""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    load_before = os.getloadavg()
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["load_average_1_5_15_before"] = [round(v, 2) for v in load_before]
    report["load_average_1_5_15_after"] = [round(v, 2) for v in os.getloadavg()]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="benchmark", help="phantom size: benchmark (512x512x300) or NXxNYxNZ")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--naive", action="store_true", help="also run every sliding window (slow: tens of minutes)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from LNStagingLib.phantom.cohort import write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cohort = write_cohort(Path(tmp) / "cohort", seed=args.seed, cases=1, size=args.size, folds=1, test_fraction=0.0,
                              direction="oblique")
        print(f"phantom {args.size} written in {time.perf_counter() - t:.1f} s")
        case = cohort / "cases" / "case000"
        report = {"size": args.size, "threads": args.threads, "fast": run_once(case, Path(tmp) / "fast", True, args.threads)}
        if args.naive:
            report["naive"] = run_once(case, Path(tmp) / "naive", False, args.threads)
            import numpy as np
            import SimpleITK as sitk

            a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(Path(tmp) / k / "ln_probability.nii.gz")))
                    for k in ("fast", "naive"))
            report["max_abs_probability_difference"] = float(np.abs(a - b).max())
            a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(Path(tmp) / k / "gtv_ln.nii.gz"))) for k in ("fast", "naive"))
            report["same_instance_labels"] = bool(np.array_equal(a, b))
            a, b = ([c["probability"] for c in json.loads((Path(tmp) / k / "candidates.json").read_text())["candidates"]]
                    for k in ("fast", "naive"))
            report["max_abs_candidate_probability_difference"] = (float(np.abs(np.subtract(a, b)).max())
                                                                  if len(a) == len(b) else "different candidates")
            report["stage1_ratio"] = report["naive"]["timings"]["stage1"] / report["fast"]["timings"]["stage1"]
            report["total_ratio"] = report["naive"]["seconds"] / report["fast"]["seconds"]
    report["benchmark_process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
