"""Stage-2 classification of 50 candidates: batched (library) vs the naive per-candidate loop, in one run.

Real CT (Testing/Data/totalsegmentator/example_ct.nii.gz, RAS on disk so its ITK direction is not the identity),
a stand-in PET derived from it, 50 candidates at random voxels, the "small" preset with the GNNp head and random
(seeded) weights. The goal is < 2 s for 50 candidates on this CPU. Both ways run in the default (oneDNN) mode,
where they agree to rounding, and in exact mode, where their outputs must be bit-identical.

    .venv/bin/python benchmarks/stage2_benchmark.py [--preset small] [--head gnnp] [-n 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from LNStagingLib.inference.classification import classify_candidates, classify_candidates_naive
from LNStagingLib.models.stage2 import Stage2Model, parameter_count, stage2_config
from LNStagingLib.priors.candidate_priors import PRIOR_NAMES

DATA = Path(__file__).resolve().parents[1] / "Testing" / "Data" / "totalsegmentator" / "example_ct.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--head", default="gnnp")
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0 = torch's default); on a shared, loaded machine 1 avoids OpenMP stalls")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ct = sitk.ReadImage(str(DATA))
    pet = sitk.Cast(sitk.Clamp(ct, lowerBound=0, upperBound=1000), sitk.sitkFloat32) / 100.0
    rng = np.random.default_rng(0)
    index = rng.integers(10, np.array(ct.GetSize()) - 10, size=(args.n, 3))
    centres = np.array([ct.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in index])
    priors = rng.random((args.n, len(PRIOR_NAMES))) * 50
    torch.manual_seed(0)
    model = Stage2Model(stage2_config(args.preset, head=args.head, prior_names=PRIOR_NAMES)).eval()

    classify_candidates(model, ct, centres[:4], pet=pet, priors=priors[:4])  # warm-up (allocator, kernels)
    times = {"batched": [], "naive": [], "batched_exact": [], "naive_exact": []}
    out = {}
    runs = {"batched": lambda exact: classify_candidates(model, ct, centres, pet=pet, priors=priors, exact=exact),
            "naive": lambda exact: classify_candidates_naive(model, ct, centres, pet=pet, priors=priors, exact=exact)}
    for _ in range(args.repeats):  # interleaved, so all ways see the same machine load
        for name in times:
            t = time.perf_counter()
            out[name] = runs[name.split("_")[0]](name.endswith("exact"))
            times[name].append(time.perf_counter() - t)
    best = {name: min(values) for name, values in times.items()}
    report = {
        "preset": args.preset, "head": args.head, "candidates": args.n, "parameters": parameter_count(model),
        "threads": torch.get_num_threads(),
        "seconds_min": {k: round(v, 3) for k, v in best.items()},
        "seconds_all": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "speedup_naive_over_batched": round(best["naive"] / best["batched"], 2),
        "speedup_exact_naive_over_exact_batched": round(best["naive_exact"] / best["batched_exact"], 2),
        "fast_max_abs_difference": float(np.max(np.abs(out["batched"] - out["naive"]))),
        "exact_outputs_identical": bool(np.array_equal(out["batched_exact"], out["naive_exact"])),
        "goal_under_2s": best["batched"] < 2.0,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
