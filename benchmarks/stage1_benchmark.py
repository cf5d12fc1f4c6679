"""Stage 1: sliding-window inference that skips zero-attention windows, against the full sliding window, same run.

A phantom PET/CT (LNStagingLib.phantom, default its "benchmark" size 512x512x300 at 0.9 x 0.9 x 1.5 mm) gets its attention map from its organs (priors.attention); a randomly initialised stage-1 network of
the chosen preset (the speed does not depend on the weights; the head bias is set so the exactness check is not
trivial) segments it twice: skipping all-zero-attention windows, and running every window. Reports both times,
the ratio, the windows run/skipped, and checks the two logit volumes are identical.

    .venv/bin/python benchmarks/stage1_benchmark.py [--size benchmark|medium|NXxNYxNZ] [--config tiny|small|paper]

The speed-up tends to windows / windows_run ("window_ratio") as the network gets heavier; with the tiny network
the per-window bookkeeping (cropping, blending) shows in the measured ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from LNStagingLib.anatomy.structures import OrganLabels, map_structures  # noqa: E402
from LNStagingLib.dataset.format import PDAC20_LABELS  # noqa: E402
from LNStagingLib.inference.segmentation import sliding_window_logits  # noqa: E402
from LNStagingLib.models.seg_inputs import attention_array, network_channels  # noqa: E402
from LNStagingLib.models.unet import AttentionUNet, parameter_count, unet_config  # noqa: E402
from LNStagingLib.phantom.case import generate_case  # noqa: E402
from LNStagingLib.priors.attention import attention_map  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="benchmark")
    parser.add_argument("--config", default="tiny", choices=("tiny", "small", "paper"),
                        help="network size (tiny: minutes; small: the full pass alone takes ~30 min on 2 cores)")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for small windows on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    case = generate_case(args.seed, size=args.size, direction="oblique")
    structures = map_structures(OrganLabels(case.organs, PDAC20_LABELS), "pdac20")
    attention_image = attention_map(structures.image)
    torch.manual_seed(0)
    model = AttentionUNet(unet_config(args.config, use_pet=True)).eval()
    with torch.no_grad():
        model.heads[0].bias.copy_(torch.tensor([2.0, -2.0]))
    pet = case.pet if case.pet.GetSize() == case.ct.GetSize() else None
    if pet is None:
        import SimpleITK as sitk
        pet = sitk.Resample(case.pet, case.ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    channels = network_channels(model.config, case.ct, pet)
    attention = attention_array(attention_image, case.ct)

    t0 = time.perf_counter()
    skipped, stats = sliding_window_logits(model, channels, attention, overlap=args.overlap, skip_empty=True)
    t_skip = time.perf_counter() - t0
    t0 = time.perf_counter()
    full, full_stats = sliding_window_logits(model, channels, attention, overlap=args.overlap, skip_empty=False)
    t_full = time.perf_counter() - t0
    report = {
        "volume_zyx": list(channels.shape[1:]), "spacing_xyz_mm": list(case.ct.GetSpacing()),
        "attention_nonzero_fraction": round(float((attention > 0).mean()), 4),
        "config": args.config, "parameters": parameter_count(model), "window_zyx": list(model.config.patch_size),
        "overlap": args.overlap, "threads": args.threads,
        "windows": stats["windows"], "windows_run": stats["run"], "windows_skipped": stats["skipped"],
        "window_ratio": round(stats["windows"] / max(stats["run"], 1), 2),
        "skip_seconds": round(t_skip, 2), "full_seconds": round(t_full, 2), "speedup": round(t_full / t_skip, 2),
        "identical": bool(np.array_equal(skipped, full)), "max_abs_difference": float(np.abs(skipped - full).max()),
    }
    assert full_stats["run"] == full_stats["windows"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
