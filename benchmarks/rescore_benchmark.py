"""One reviewer decision re-scoring the pending candidates (issue 19): the faces' way (the CNN once per case in
``ReviewGraph``, then only the graph head per decision) vs the naive way (the CNN over every candidate again at
every decision), in one run; the probabilities must be identical.

Real CT (Testing/Data/totalsegmentator/example_ct.nii.gz, non-identity direction), a stand-in PET derived from it,
N candidates at random voxels, the "small" preset GNNp with the review-state input and seeded random weights.
Decisions: accept/reject the k most probable candidates one after the other (k = 1..decisions).

    .venv/bin/python benchmarks/rescore_benchmark.py [-n 30] [--decisions 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from LNStagingLib.inference.rescore import ReviewGraph, rescore
from LNStagingLib.models.stage2 import Stage2Model, stage2_config
from LNStagingLib.results import Candidate, Results

DATA = Path(__file__).resolve().parents[1] / "Testing" / "Data" / "totalsegmentator" / "example_ct.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--decisions", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ct = sitk.ReadImage(str(DATA))
    pet = sitk.Cast(sitk.Clamp(ct, lowerBound=0, upperBound=1000), sitk.sitkFloat32) / 100.0
    rng = np.random.default_rng(0)
    index = rng.integers(10, np.array(ct.GetSize()) - 10, size=(args.n, 3))
    probabilities = rng.random(args.n)
    results = Results(candidates=[
        Candidate(id=k + 1, centroid_lps=ct.TransformIndexToPhysicalPoint([int(v) for v in index[k]]),
                  probability=float(probabilities[k]), scores={"stage2": float(probabilities[k])})
        for k in range(args.n)])
    results.rank_candidates()
    torch.manual_seed(0)
    model = Stage2Model(stage2_config("small", head="gnnp", use_priors=False, review_state=True)).eval()
    order = [c.id for c in sorted(results.candidates, key=lambda c: c.rank)][:args.decisions]

    start = time.perf_counter()
    graph = ReviewGraph.from_results(model, results, ct, pet)
    once = time.perf_counter() - start
    cached, naive, identical = [], [], True
    decisions: dict[int, str] = {}
    for step, cid in enumerate(order):
        decisions[cid] = "accepted" if step % 2 == 0 else "rejected"
        t = time.perf_counter()
        fast = rescore(results, decisions, graph)
        cached.append(time.perf_counter() - t)
        t = time.perf_counter()
        slow = rescore(results, decisions, ReviewGraph.from_results(model, results, ct, pet))
        naive.append(time.perf_counter() - t)
        identical &= fast.probabilities == slow.probabilities
    report = {"candidates": args.n, "decisions": len(order), "threads": args.threads,
              "cnn_once_s": round(once, 3), "cached_per_decision_ms": round(1000 * float(np.median(cached)), 1),
              "naive_per_decision_ms": round(1000 * float(np.median(naive)), 1),
              "ratio": round(float(np.median(naive) / np.median(cached)), 1), "identical": bool(identical),
              "load_average_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
