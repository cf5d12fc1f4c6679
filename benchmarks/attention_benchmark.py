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

--organ-map: the whole job of `lnstaging attention` on a 20-label organ/vessel map in the PDAC paper's convention
(the same real TotalSegmentator map relabelled to it: spleen, kidneys, gallbladder, liver, stomach, aorta, IVC,
portal/splenic vein, pancreas, adrenals, duodenum real; esophagus, SMV, SMA, TC&SA, LGA, CHA&PHA as tubes and a
PDAC blob in the pancreas), at 512x512x244: mapping to the 10 structures plus the attention map in-process (against
np.unique + one np.isin pass per structure, and the naive full-volume map), and the command end to end (start-up,
NIfTI read and write).

    .venv/bin/python benchmarks/attention_benchmark.py --organ-map
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


#: TotalSegmentator 'total' ids -> the PDAC paper's 20-label convention (benchmark input only).
TOTAL_TO_PDAC20 = {1: 1, 2: 2, 3: 3, 4: 4, 15: 5, 5: 6, 6: 7, 52: 8, 63: 9, 64: 10, 7: 11, 8: 12, 9: 13, 19: 14}


def _resampled(image: sitk.Image, size_xyz) -> sitk.Image:
    """Nearest-neighbour copy of a label map on a grid of ``size_xyz`` voxels over the same extent."""
    extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
    spacing = tuple(float(e / n) for e, n in zip(extent, size_xyz))
    reference = sitk.Image([int(s) for s in size_xyz], sitk.sitkUInt8)
    reference.SetSpacing(spacing)
    reference.SetDirection(image.GetDirection())
    shift = np.array(image.GetDirection()).reshape(3, 3) @ ((np.array(spacing) - np.array(image.GetSpacing())) / 2)
    reference.SetOrigin(tuple(np.array(image.GetOrigin()) + shift))
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def build_pdac20_map(size_xyz=(512, 512, 244)) -> sitk.Image:
    source = sitk.ReadImage(str(SOURCE))
    table = np.zeros(256, np.uint8)
    table[list(TOTAL_TO_PDAC20)] = list(TOTAL_TO_PDAC20.values())
    relabelled = sitk.GetImageFromArray(table[sitk.GetArrayViewFromImage(source)])
    relabelled.CopyInformation(source)
    big = _resampled(relabelled, size_xyz)
    array = sitk.GetArrayFromImage(big)
    spacing = big.GetSpacing()
    az, ay, ax = np.nonzero(array == 8)  # aorta
    cy, cx, zmid = float(ay.mean()), float(ax.mean()), int(np.median(az))
    mm = lambda v, axis: v / spacing[axis]  # noqa: E731
    nz = array.shape[0]
    add = {
        5: _tube(array.shape, (cy - mm(25, 1), cx - mm(15, 0)), mm(9, 0), (zmid, nz)),
        15: _tube(array.shape, (cy - mm(20, 1), cx - mm(20, 0)), mm(5, 0), (zmid - 50, zmid), (-mm(10, 1), 0)),
        16: _tube(array.shape, (cy - mm(25, 1), cx), mm(4, 0), (zmid - 60, zmid - 10), (-mm(20, 1), 0)),
        17: _tube(array.shape, (cy - mm(20, 1), cx + mm(5, 0)), mm(4, 0), (zmid, zmid + 25), (-mm(10, 1), mm(40, 0))),
        18: _tube(array.shape, (cy - mm(35, 1), cx + mm(10, 0)), mm(2, 0), (zmid + 25, zmid + 70), (-mm(15, 1), mm(15, 0))),
        20: _tube(array.shape, (cy - mm(30, 1), cx - mm(10, 0)), mm(3, 0), (zmid + 5, zmid + 30), (-mm(10, 1), -mm(45, 0))),
    }
    for value, voxels in add.items():
        array[voxels & (array == 0)] = value
    pz, py, px = np.nonzero(array == 11)  # a PDAC blob (label 19) in the pancreas
    i = len(pz) // 3
    array[_tube(array.shape, (py[i], px[i]), mm(8, 0), (pz[i] - 5, pz[i] + 5)) & (array == 11)] = 19
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(big)
    return image


def map_structures_naive(organs: sitk.Image, mapping: dict) -> np.ndarray:
    """The straightforward mapping: np.unique for the values present, then one np.isin pass per structure."""
    array = sitk.GetArrayViewFromImage(organs)
    values = set(int(v) for v in np.unique(array) if v != 0)
    out = np.zeros(array.shape, np.uint8)
    for structure in STRUCTURE_BY_KEY.values():
        hit = sorted(v for v in mapping.get(structure.key, ()) if v in values)
        if hit:
            out[np.isin(array, hit)] = structure.index
    return out


def organ_map_worker(labels_path: str, mapping_path: str, out_path: str) -> None:
    """In-process: read, map to the structures, attention map (timed apart), against the naive mapping."""
    organs_image = sitk.ReadImage(labels_path)
    start = time.perf_counter()
    organs = read_organs(labels_path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    structures = map_structures(organs, mapping_path)
    map_s = time.perf_counter() - start
    start = time.perf_counter()
    attention = attention_map(structures.image)
    attention_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = map_structures_naive(organs_image, json.loads(Path(mapping_path).read_text()))
    naive_map_s = time.perf_counter() - start
    sitk.WriteImage(structures.image, out_path + ".structures.nii.gz")
    np.save(out_path, sitk.GetArrayViewFromImage(attention))
    print(json.dumps({"read_s": read_s, "map_s": map_s, "attention_s": attention_s, "naive_map_s": naive_map_s,
                      "structure_maps_identical": bool(np.array_equal(naive, sitk.GetArrayViewFromImage(structures.image))),
                      "structures_present": len(structures.present)}))


def run_organ_map(size_xyz) -> dict:
    from LNStagingLib.anatomy.structures import PDAC20_IDS

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        organs = build_pdac20_map(size_xyz)
        labels_path, mapping_path = tmp / "organs20.nii.gz", tmp / "pdac20.json"
        sitk.WriteImage(organs, str(labels_path), useCompression=True)
        mapping_path.write_text(json.dumps({k: list(v) for k, v in PDAC20_IDS.items()}))
        values = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(organs)) if v)
        done = subprocess.run([sys.executable, __file__, "--organ-map-worker", str(labels_path), str(mapping_path),
                               str(tmp / "band.npy")], capture_output=True, text=True, check=True)
        inprocess = json.loads(done.stdout.strip().splitlines()[-1])
        env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "LNStagingLib.cli", "attention", "--organs", str(labels_path),
                              "--mapping", str(mapping_path), "--out", str(tmp / "cli.nii.gz"), "--quiet"],
                             capture_output=True, text=True, env=env, cwd=tmp)
        cli_s = time.perf_counter() - start
        if cli.returncode:
            raise SystemExit(cli.stderr)
        done = subprocess.run([sys.executable, __file__, "--worker", "naive", str(tmp / "band.npy.structures.nii.gz"),
                               str(tmp / "naive.npy")], capture_output=True, text=True, check=True)
        naive = json.loads(done.stdout.strip().splitlines()[-1])
        band, full = np.load(str(tmp / "band.npy")), np.load(str(tmp / "naive.npy"))
        from_cli = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp / "cli.nii.gz")))
        return {
            "size_xyz": list(organs.GetSize()), "label_values": values,
            "in_process": inprocess,
            "in_process_map_plus_attention_s": inprocess["map_s"] + inprocess["attention_s"],
            "cli_wall_s": cli_s,
            "naive_attention_s": naive["seconds"],
            "naive_total_s": inprocess["naive_map_s"] + naive["seconds"],
            "cli_equals_in_process": bool(np.array_equal(from_cli, band)),
            "max_abs_difference_vs_naive": float(np.abs(band - full).max()),
        }


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
    parser.add_argument("--organ-map", action="store_true", help="the 20-label organ map through mapping + attention "
                                                                   "and through `lnstaging attention`")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "LABELS", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--organ-map-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.organ_map_worker:
        organ_map_worker(*args.organ_map_worker)
        return
    if args.organ_map:
        print(json.dumps(run_organ_map(tuple(args.size)), indent=2))
        return
    print(json.dumps(run(tuple(args.size)), indent=2))


if __name__ == "__main__":
    main()
