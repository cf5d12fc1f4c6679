"""Stage 1 as `lnstaging run` does it (the demo segmentation model on its 1.8 x 1.8 x 2.5 mm grid, zero-attention
windows skipped) on a benchmark-size phantom, with the windows that run going through the network one at a time
against in batches (inference.segmentation.WINDOW_BATCH), same invocation: times and the largest logit difference.

    .venv/bin/python benchmarks/window_batch_benchmark.py [--size benchmark] [--threads 1] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from LNStagingLib.anatomy.structures import OrganLabels, map_structures  # noqa: E402
from LNStagingLib.commands._common import select_models  # noqa: E402
from LNStagingLib.dataset.format import PDAC20_LABELS  # noqa: E402
from LNStagingLib.inference.segmentation import WINDOW_BATCH, sliding_window_logits  # noqa: E402
from LNStagingLib.io.resample import resample_to_reference  # noqa: E402
from LNStagingLib.models.checkpoint import load_model  # noqa: E402
from LNStagingLib.models.seg_inputs import attention_array, network_channels  # noqa: E402
from LNStagingLib.phantom.case import generate_case  # noqa: E402
from LNStagingLib.pipeline import stage1_grid  # noqa: E402
from LNStagingLib.priors.attention import attention_map  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="benchmark")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=WINDOW_BATCH)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = generate_case(args.seed, size=args.size, direction="oblique")
    attention = attention_map(map_structures(OrganLabels(case.organs, PDAC20_LABELS), "pdac20").image)
    selection = select_models("default")
    model, _, payload = load_model(selection.seg, selection.sha256.get("seg"), "cpu")
    grid = stage1_grid(case.ct, payload.get("training_data", {}).get("spacing_mm"))
    ct, att, pet = (resample_to_reference(image, grid, "linear", fill)
                    for image, fill in ((case.ct, -1024.0), (attention, 0.0), (case.pet, 0.0)))
    channels, att = network_channels(model.config, ct, pet), attention_array(att, ct)
    report = {"grid_zyx": list(channels.shape[1:]), "window_zyx": list(model.config.patch_size),
              "threads": args.threads, "load_average_before": [round(v, 2) for v in os.getloadavg()]}
    logits = {}
    for batch in (1, args.batch):
        t = time.perf_counter()
        logits[batch], stats = sliding_window_logits(model, channels, att, batch_size=batch)
        report[f"batch_{batch}_seconds"] = round(time.perf_counter() - t, 2)
    report.update(windows=stats["windows"], windows_run=stats["run"],
                  speedup=round(report["batch_1_seconds"] / report[f"batch_{args.batch}_seconds"], 2),
                  max_abs_logit_difference=float(np.abs(logits[1] - logits[args.batch]).max()),
                  load_average_after=[round(v, 2) for v in os.getloadavg()])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
