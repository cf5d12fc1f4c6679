#!/usr/bin/env python
"""How many stage-1 windows lie wholly outside the body on real CTs (issue 32: "windows only over the body")?

For each CT: the body mask (anatomy/body.py) on the demo model's 1.8 x 1.8 x 2.5 mm grid (nearest neighbour, the
CT's own direction), tiled as inference/segmentation.py tiles it (padded to one window, 50 % overlap), for the paper
window (80 x 192 x 160) and the small one (32 x 64 x 64). A window with no body voxel is the only kind a body skip
could save.

  python benchmarks/body_windows.py Testing/Data/totalsegmentator/example_ct.nii.gz ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LNStagingLib.anatomy.body import body_mask  # noqa: E402
from LNStagingLib.inference.segmentation import window_slices  # noqa: E402

GRID_MM = (1.8, 1.8, 2.5)  # the demo segmentation model's voxel size (x, y, z)
WINDOWS = {"paper": (80, 192, 160), "small": (32, 64, 64)}


def on_grid(image: sitk.Image, spacing) -> sitk.Image:
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkNearestNeighbor, image.GetOrigin(), spacing,
                         image.GetDirection(), 0)


def windows_outside_body(body: np.ndarray, window) -> tuple[int, int]:
    """(windows, windows without a body voxel) of the sliding-window tiling of ``body`` [z, y, x]."""
    padded = tuple(max(s, w) for s, w in zip(body.shape, window))
    full = np.zeros(padded, bool)
    full[tuple(slice(0, s) for s in body.shape)] = body
    slices = window_slices(padded, window, 0.5)
    return len(slices), sum(1 for region in slices if not full[region].any())


def main(argv=None) -> int:
    for path in argv if argv is not None else sys.argv[1:]:
        ct = sitk.ReadImage(str(path))
        body = sitk.GetArrayFromImage(on_grid(body_mask(ct), GRID_MM)) > 0
        for name, window in WINDOWS.items():
            total, outside = windows_outside_body(body, window)
            print(f"{path}: CT {ct.GetSize()}, grid {body.shape[::-1]}, body {body.mean():.0%}, {name} window: "
                  f"{outside} of {total} windows wholly outside the body")
    return 0


if __name__ == "__main__":
    sys.exit(main())
