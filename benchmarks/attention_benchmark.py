"""Attention map: band-limited (LNStagingLib.priors.attention.attention_map) against the naive way, same run.

The naive way is what eq. 2 reads like: ten full-volume signed distance maps, ten full-volume trapezoids and a
full-volume maximum. Both run on the same 512x512x244 structure label map, each in its own subprocess so that
peak memory (ru_maxrss) is its own; the outputs are compared voxel by voxel.

The label map: the real TotalSegmentator abdomen label map (Testing/Data/totalsegmentator/
example_seg_fast_force_split.nii.gz, 3 mm) mapped to the structures (spleen, stomach, aorta, pancreas,
duodenum are real) and resampled (nearest neighbour) onto a 512x512x244 grid of the same extent, with the five
structures it lacks (esophagus, SMA, TC&SA, LGA, CHA&PHA) added as tubes beside the real aorta so that all
ten distance maps are computed.

    .venv/bin/python benchmarks/attention_benchmark.py [--size 512 512 244]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from LNStagingLib.anatomy.structures import STRUCTURE_BY_KEY, map_structures, read_organs  # noqa: E402
from LNStagingLib.priors.attention import attention_map, attention_map_naive  # noqa: E402

SOURCE = ROOT / "Testing/Data/totalsegmentator/example_seg_fast_force_split.nii.gz"


def _tube(shape, centre_yx, radius_vox, z_range, drift_yx=(0.0, 0.0)):
    """Voxels of a (slightly drifting) tube along z, as a boolean array."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    zz = np.clip((z - z_range[0]) / max(z_range[1] - z_range[0], 1), 0, 1)
    cy = centre_yx[0] + drift_yx[0] * zz
    cx = centre_yx[1] + drift_yx[1] * zz
    return ((y - cy) ** 2 + (x - cx) ** 2 <= radius_vox**2) & (z >= z_range[0]) & (z < z_range[1])


def build_label_map(size_xyz=(512, 512, 244)) -> sitk.Image:
    structures = map_structures(read_organs(SOURCE), "totalsegmentator").image
    extent = np.array(structures.GetSize()) * np.array(structures.GetSpacing())
    spacing = tuple(float(e / n) for e, n in zip(extent, size_xyz))
    reference = sitk.Image([int(s) for s in size_xyz], sitk.sitkUInt8)
    reference.SetSpacing(spacing)
    reference.SetDirection(structures.GetDirection())
    origin_shift = np.array(structures.GetDirection()).reshape(3, 3) @ (
        (np.array(spacing) - np.array(structures.GetSpacing())) / 2)
    reference.SetOrigin(tuple(np.array(structures.GetOrigin()) + origin_shift))
    big = sitk.Resample(structures, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    array = sitk.GetArrayFromImage(big)
    # the aorta's mean position anchors the synthetic vessels (voxel units of the new grid)
    az, ay, ax = np.nonzero(array == STRUCTURE_BY_KEY["aorta"].index)
    cy, cx, zmid = float(ay.mean()), float(ax.mean()), int(np.median(az))
    mm = lambda v, axis: v / spacing[axis]  # noqa: E731  mm -> voxels along x (0) or y (1)
    nz = array.shape[0]
    add = {
        "esophagus": _tube(array.shape, (cy - mm(25, 1), cx - mm(15, 0)), mm(9, 0), (zmid, nz)),
        "sma": _tube(array.shape, (cy - mm(25, 1), cx), mm(4, 0), (zmid - 60, zmid - 10), (-mm(20, 1), 0)),
        "tc_sa": _tube(array.shape, (cy - mm(20, 1), cx + mm(5, 0)), mm(4, 0), (zmid, zmid + 25), (-mm(10, 1), mm(40, 0))),
        "lga": _tube(array.shape, (cy - mm(35, 1), cx + mm(10, 0)), mm(2, 0), (zmid + 25, zmid + 70), (-mm(15, 1), mm(15, 0))),
        "cha_pha": _tube(array.shape, (cy - mm(30, 1), cx - mm(10, 0)), mm(3, 0), (zmid + 5, zmid + 30), (-mm(10, 1), -mm(45, 0))),
    }
    for key, voxels in add.items():
        array[voxels & (array == 0)] = STRUCTURE_BY_KEY[key].index
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(big)
    return image


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(method: str, labels_path: str, out_path: str) -> None:
    labels = sitk.ReadImage(labels_path)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) so file decoding is not counted
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    result = attention_map(labels) if method == "band" else attention_map_naive(labels)
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    np.save(out_path, sitk.GetArrayViewFromImage(result))
    print(json.dumps({"method": method, "seconds": seconds, "peak_rss_mb": peak,
                      "peak_above_input_mb": peak - before,
                      "lifetime_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(size_xyz) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        labels = build_label_map(size_xyz)
        labels_path = str(Path(tmp) / "structures.nii.gz")
        sitk.WriteImage(labels, labels_path)
        present = int(len(np.unique(sitk.GetArrayViewFromImage(labels))) - 1)
        figures = {}
        for method in ("band", "naive"):
            out = str(Path(tmp) / f"{method}.npy")
            done = subprocess.run([sys.executable, __file__, "--worker", method, labels_path, out],
                                  capture_output=True, text=True, check=True)
            figures[method] = json.loads(done.stdout.strip().splitlines()[-1])
        band, naive = np.load(str(Path(tmp) / "band.npy")), np.load(str(Path(tmp) / "naive.npy"))
        return {
            "size_xyz": list(labels.GetSize()), "spacing_mm": [round(s, 3) for s in labels.GetSpacing()],
            "structures_present": present,
            "band": figures["band"], "naive": figures["naive"],
            "time_ratio_naive_over_band": figures["naive"]["seconds"] / figures["band"]["seconds"],
            "peak_ratio_naive_over_band": figures["naive"]["peak_rss_mb"] / figures["band"]["peak_rss_mb"],
            "max_abs_difference": float(np.abs(band - naive).max()),
            "nonzero_fraction": float((band > 0).mean()),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 244), metavar=("X", "Y", "Z"))
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "LABELS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    print(json.dumps(run(tuple(args.size)), indent=2))


if __name__ == "__main__":
    main()
