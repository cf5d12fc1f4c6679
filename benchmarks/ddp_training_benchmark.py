#!/usr/bin/env python
"""`lnstaging train TASK` in one process vs on 2 gloo ranks under torchrun (DistributedDataParallel, one torch thread
per process): the same phantom cohort and options, wall time of each (process start-up, imports and data loading
included, as a user pays them), their ratio, peak resident memory per process, and the largest weight difference of
the two final checkpoints (the 2-rank model should be the 1-process model).

  python benchmarks/ddp_training_benchmark.py --task patient [--config small] [--cases 8] [--epochs 2]

Other people's jobs share the cores: the load average before and after each run is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FINAL = {"cls": "cls_last.pt", "seg": "seg_model.pt", "patient": "patient_model.pt"}


def timed(command: list[str]) -> tuple[float, float, str]:
    """(seconds, load average before, output) of a command; GNU time's peak RSS is in the output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    load = os.getloadavg()[0]
    start = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-f", "peak-rss-kb %M", *command], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr[-3000:])
    return time.perf_counter() - start, load, run.stderr


def weights_difference(a: Path, b: Path) -> float:
    from LNStagingLib.models import identification, patient, stage2, unet  # noqa: F401  (register the models)
    from LNStagingLib.models.checkpoint import load_model

    one, two = (dict(load_model(p)[0].named_parameters()) for p in (a, b))
    return max(float((one[k] - two[k]).detach().abs().max()) for k in one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("seg", "cls", "patient"), default="patient")
    parser.add_argument("--config", default="small", choices=("tiny", "small"))
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    from LNStagingLib.phantom.cohort import write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cohort = write_cohort(tmp / "cohort", seed=3, cases=args.cases, size="small", folds=args.cases,
                              test_fraction=0.0)
        command = ["train", args.task, "--data", str(cohort), "--config", args.config, "--fold", "0", "--seed", "1",
                   "--epochs", str(args.epochs)]
        if args.task == "cls":  # the patch cache is filled once, outside the timings
            subprocess.run([sys.executable, "-m", "LNStagingLib.cli", *command, "--out", str(tmp / "warm"),
                            "--epochs", "1"], env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                           check=True, capture_output=True)
            for name in ("one", "two"):
                shutil.copytree(tmp / "warm" / "cache", tmp / name / "cache")
        one, load_one, out_one = timed([sys.executable, "-m", "LNStagingLib.cli", *command, "--out", str(tmp / "one")])
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        two, load_two, out_two = timed([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "LNStagingLib.cli",
                                        *command, "--out", str(tmp / "two"), "--distributed"])
        difference = weights_difference(tmp / "one" / FINAL[args.task], tmp / "two" / FINAL[args.task])
        rss = lambda text: [line.split()[-1] for line in text.splitlines() if line.startswith("peak-rss-kb")][-1]
        print(f"train {args.task} --config {args.config}, {args.cases} phantom cases (fold 0 validates), "
              f"{args.epochs} epochs, 1 torch thread per process")
        print(f"1 process: {one:.1f} s (load before {load_one:.1f}), peak RSS {int(rss(out_one)) / 1024:.0f} MB")
        print(f"2 ranks:   {two:.1f} s (load before {load_two:.1f}; torchrun's peak RSS of its largest process "
              f"{int(rss(out_two)) / 1024:.0f} MB)")
        print(f"time ratio 1 process / 2 ranks: {one / two:.2f}; largest weight difference {difference:.3g}; "
              f"load after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
