#!/usr/bin/env python
"""Saving a review after one brush stroke: what the browser review does after every stroke
(scene.review_autosave.save_edits: edits read back, segmentation and GTV_LN written, small files) against the
naive way, a full save of the review folder (scene.review_state.save_review), in the same run.

The scene: a 512 x 512 x 150 CT (0.8 x 0.8 x 2 mm, axes permuted so the direction is not the identity) with
20 spherical GTV_LN segments on slicer-core's MRML, plus the attention and probability maps of a run; the stroke adds a 5 x 5 voxel patch to one of them.

  python benchmarks/review_save_benchmark.py [--size 512 512 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LNStagingLib.results import Candidate, PatientResult, Results  # noqa: E402
from LNStagingLib.scene import review_autosave, review_state, segments, volumes  # noqa: E402
from LNStagingLib.scene.review import ReviewScene  # noqa: E402
from LNStagingLib.scene.setup import prepare_scene  # noqa: E402


def make_results(size_xyz, n_nodes: int = 20, seed: int = 0) -> tuple[sitk.Image, Results]:
    rng = np.random.default_rng(seed)
    shape = tuple(size_xyz[::-1])
    ct = sitk.GetImageFromArray(rng.integers(-100, 100, shape).astype(np.int16))
    ct.SetSpacing((0.8, 0.8, 2.0))
    ct.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    labels = np.zeros(shape, np.uint16)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for cid in range(1, n_nodes + 1):
        c = [int(rng.integers(n // 8, n - n // 8)) for n in shape]
        labels[(x - c[2]) ** 2 + (y - c[1]) ** 2 + ((z - c[0]) * 2.5) ** 2 <= 64] = cid
    gtv = sitk.GetImageFromArray(labels)
    gtv.CopyInformation(ct)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(gtv)
    candidates = [Candidate(id=c, centroid_lps=stats.GetCentroid(c), volume_ml=stats.GetPhysicalSize(c) / 1000,
                            probability=0.5) for c in stats.GetLabels()]
    maps = {}
    for name in ("attention", "ln_probability"):  # float32 maps on the CT grid, as a pipeline run writes them
        values = np.clip(rng.normal(0.2, 0.2, shape), 0, 1).astype(np.float32)
        maps[name] = sitk.GetImageFromArray(values)
        maps[name].CopyInformation(ct)
    results = Results(gtv_ln=gtv, attention=maps["attention"], ln_probability=maps["ln_probability"],
                      candidates=candidates, patient=PatientResult(metastasis_probability=0.5),
                      provenance={"benchmark": "review save"})
    results.rank_candidates()
    return ct, results


def stroke(review: ReviewScene, ct_node, candidate_id: int, offset: int) -> None:
    """Add a 5 x 5 voxel patch (in one slice) next to a voxel of the candidate's segment."""
    segment_id = next(s for s, c in segments.candidate_ids_by_segment(review.segmentation).items() if c == candidate_id)
    array = segments.array_from_segment(review.segmentation, segment_id, ct_node)
    z, y, x = np.argwhere(array)[0]
    array[z, y + offset: y + offset + 5, x: x + 5] = 1
    segments.update_segment_from_array(review.segmentation, segment_id, array, ct_node)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 150), metavar=("NX", "NY", "NZ"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ct, results = make_results(args.size)
    scene = prepare_scene().scene
    ct_node = volumes.add_volume(scene, ct, "CT")
    review = ReviewScene.show(scene, results, ct_node)
    with tempfile.TemporaryDirectory() as tmp:
        fast_folder, naive_folder = Path(tmp) / "fast", Path(tmp) / "naive"
        review_state.save_review(review, fast_folder)
        fast, naive = [], []
        for k in range(args.repeats):
            stroke(review, ct_node, 3 + k, offset=-2 - k)
            t = time.perf_counter()
            review_autosave.save_edits(review, fast_folder)
            fast.append(time.perf_counter() - t)
            t = time.perf_counter()
            review_state.save_review(review, naive_folder)
            naive.append(time.perf_counter() - t)
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(fast_folder / "gtv_ln.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(naive_folder / "gtv_ln.nii.gz")))
        same = bool(np.array_equal(a, b))
        same_tables = (fast_folder / "candidates.json").read_text() == (naive_folder / "candidates.json").read_text()
    report = {"size": list(args.size), "candidates": len(results.candidates),
              "save_edits_s (after a stroke)": [round(v, 3) for v in fast],
              "save_review_s (full save, naive)": [round(v, 3) for v in naive],
              "ratio (min naive / min fast)": round(min(naive) / min(fast), 1),
              "gtv_ln identical": same, "candidates.json identical": same_tables}
    print(json.dumps(report, indent=1))
    return 0 if same and same_tables else 1


if __name__ == "__main__":
    sys.exit(main())
