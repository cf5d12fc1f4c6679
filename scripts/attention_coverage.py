#!/usr/bin/env python
"""Where does the distance-guided attention map (paper 2, Table II) put the nodes and the look-alikes of a cohort?

The attention gate can only help a segmentation network by suppressing false positives where attention is 0.
This measures, per cohort, the share of the volume with attention > 0, and the attention at the centre of every
lymph node and every look-alike (candidates.csv): if the look-alikes lie where attention > 0, the gate cannot
remove them and attention has nothing to add on that cohort. Seconds per case:

  python scripts/attention_coverage.py --data COHORT [--split test|all]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from LNStagingLib.dataset.format import read_dataset  # noqa: E402
from LNStagingLib.inference.case_inputs import case_attention  # noqa: E402


def attention_at(attention, points_lps: np.ndarray) -> np.ndarray:
    """Attention at the voxel nearest to each LPS point."""
    import SimpleITK as sitk

    array = sitk.GetArrayViewFromImage(attention)
    out = []
    for point in points_lps:
        i, j, k = attention.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
        inside = all(0 <= a < n for a, n in zip((i, j, k), attention.GetSize()))
        out.append(float(array[k, j, i]) if inside else np.nan)
    return np.asarray(out)


def main() -> int:
    import SimpleITK as sitk

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="cohort folder with organs and candidates.csv per case")
    parser.add_argument("--split", choices=("test", "all"), default="test")
    args = parser.parse_args()
    dataset = read_dataset(args.data)
    case_ids = dataset.test_ids if args.split == "test" else dataset.case_ids
    volume_share, by_kind = [], {}
    for case_id in case_ids:
        files = dataset.case(case_id)
        attention = case_attention(dataset, files, files.load("ct"))
        volume_share.append(float(np.mean(sitk.GetArrayViewFromImage(attention) > 0)))
        rows = files.candidates()
        values = attention_at(attention, np.array([[float(r["x"]), float(r["y"]), float(r["z"])] for r in rows]))
        for row, value in zip(rows, values):
            kind = "GTV_LN" if int(row["label"]) else row.get("kind", "candidate")
            kind = "negative node" if kind == "node" else kind
            by_kind.setdefault(kind, []).append(value)
    report = {"data": str(args.data), "split": args.split, "cases": len(case_ids),
              "volume_with_attention_percent": round(100 * float(np.mean(volume_share)), 1),
              "centres": {kind: {"n": len(v), "attention_zero_percent": round(100 * float(np.mean(np.asarray(v) == 0)), 1),
                                 "mean_attention": round(float(np.nanmean(v)), 3)} for kind, v in sorted(by_kind.items())}}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
