#!/usr/bin/env python
"""The whole `lnstaging run` with paper-size networks against the bundled `small` ones, step by step, in one invocation.

No paper-size weights exist (nobody has trained them: no public GTV_LN data), so each paper-size network is built from
its paper preset (models/unet.py, roi_cnn.py, gnn.py, identification.py, patient.py) with weights initialised from a
fixed seed (--seed) and saved as a real checkpoint beside the demo model's training-data record (voxel size, prior
statistics): the timings and memory are those of the paper's architecture, the probabilities mean nothing. The
`small` row runs the bundled demo weights. Both run the same case through the same pipeline in fresh processes, on
1 and on 2 threads (--threads), and the table gives each step's seconds (provenance.json's timings), the whole run's
wall and CPU seconds, the peak resident memory of the process and the load average before and after the run; the JSON
(--json) also holds each progress step's peak memory and CPU seconds (runs[i]["steps"]).

  python benchmarks/paper_size_benchmark.py                       # full size: the 512 x 512 x 300 phantom
  python benchmarks/paper_size_benchmark.py --size 96x96x64 --threads 1 --presets small paper   # CI size

Stage 1 runs at the model's voxel size (training_data.spacing_mm of the checkpoint). --seg-spacing sets it for the
paper-size U-Net: "demo" (default) keeps the demo model's 1.8 x 1.8 x 2.5 mm, "paper" uses the PDAC paper's median
0.68 x 0.68 x 0.80 mm (about 40x more voxels: hours on a CPU), or give three numbers in mm.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_benchmark import run_once  # noqa: E402  (one child-process runner for both pipeline benchmarks)

STAGES = ("seg", "cls", "identification", "patient")
DEMO_IDS = {"seg": "demo-seg", "cls": "demo-cls", "identification": "demo-identification", "patient": "demo-patient"}
PAPER_SPACING_MM = (0.68, 0.68, 0.80)  # PDAC paper, Implementation Details: median spacing of its cohort


def paper_fields(stage: str) -> dict:
    """The config fields the paper preset sets for a stage (architecture only: input handling stays the demo's)."""
    from LNStagingLib.models import gnn, patient, roi_cnn, unet
    from LNStagingLib.models.identification import ID_PATCH

    seg = {k: v for k, v in unet.PRESETS["paper"].items() if k != "ct_normalisation"} | {"preset": "paper"}
    if stage == "seg":
        return seg
    if stage == "identification":
        return seg | {"id_patch_size": ID_PATCH["paper"], "id_hidden": 128}
    if stage == "cls":
        return roi_cnn.ROI_CNN_PRESETS["paper"] | gnn.GNN_PRESETS["paper"] | {"preset": "paper"}
    keep = {"use_mask_branch", "use_texture_encoding", "use_ln_volume", "hu_window"}
    return {k: v for k, v in dataclasses.asdict(patient.PRESETS["paper"]).items() if k not in keep}


def write_paper_models(folder: Path, seed: int, seg_spacing) -> dict[str, Path]:
    """One seeded paper-size checkpoint per stage, each carrying its demo model's training-data record."""
    import torch

    from LNStagingLib.models.catalogue import Catalogue
    from LNStagingLib.models.checkpoint import MODEL_REGISTRY, build_model, load_checkpoint, save_checkpoint

    catalogue = Catalogue.read()
    paths = {}
    for stage in STAGES:
        demo = load_checkpoint(catalogue.resolve(DEMO_IDS[stage], stage), catalogue.get(DEMO_IDS[stage]).sha256)
        build_model(demo)  # registers the network class
        cls, config_class = MODEL_REGISTRY[demo["model"]]
        names = {f.name for f in dataclasses.fields(config_class)}
        fields = {k: v for k, v in (demo["config"] | paper_fields(stage)).items() if k in names}
        torch.manual_seed(seed)
        config = config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        model = cls(config)
        training_data = dict(demo["training_data"], kind="seeded paper-size weights for timing only")
        if stage in ("seg", "identification") and seg_spacing is not None:
            training_data["spacing_mm"] = list(seg_spacing)
        paths[stage] = folder / f"paper-{stage}.pt"
        save_checkpoint(paths[stage], model, config, training_data=training_data)
    return paths


def parameter_counts(paths: dict[str, Path]) -> dict[str, int]:
    from LNStagingLib.models.checkpoint import load_model

    return {stage: int(sum(p.numel() for p in load_model(path)[0].parameters())) for stage, path in paths.items()}


def demo_paths() -> dict[str, Path]:
    from LNStagingLib.models.catalogue import Catalogue

    catalogue = Catalogue.read()
    return {stage: catalogue.resolve(DEMO_IDS[stage], stage) for stage in STAGES}


def spacing_choice(text: str):
    if text == "demo":
        return None
    if text == "paper":
        return PAPER_SPACING_MM
    values = tuple(float(v) for v in text.replace(",", " ").split())
    if len(values) != 3 or min(values) <= 0:
        raise SystemExit("--seg-spacing takes demo, paper or three positive numbers in mm")
    return values


def table(rows: list[dict]) -> str:
    """Markdown: one row per (preset, threads), one column per pipeline step (wall seconds), then the whole run's wall
    and CPU seconds (user + system of every thread of the run: what it costs whatever else shares the cores, so a
    run on a busy machine still says what a quiet one needs), the peak memory and the load average around the run."""
    steps = sorted({step for row in rows for step in row["timings"]})
    head = ("| preset | threads | " + " | ".join(steps)
            + " | whole run (s) | CPU (s) | peak RSS (MB) | load average before / after |")
    lines = [head, "|" + "---|" * (len(steps) + 6)]
    for row in rows:
        cells = [f"{row['timings'].get(step, 0.0):.1f}" for step in steps]
        load = f"{row['load_average_1_5_15_before'][0]:.1f} / {row['load_average_1_5_15_after'][0]:.1f}"
        lines.append(f"| {row['preset']} | {row['threads']} | " + " | ".join(cells)
                     + f" | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} | {row['peak_rss_mb']:.0f} | {load} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="benchmark", help="phantom size: benchmark (512x512x300) or NXxNYxNZ")
    parser.add_argument("--seed", type=int, default=3, help="phantom seed, and the paper-size weights' seed")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--seg-spacing", default="demo", help="demo, paper or 'X Y Z' mm (see above)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is (not measured yet: no GPU here)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    from LNStagingLib.phantom.cohort import write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        cohort = write_cohort(tmp / "cohort", seed=args.seed, cases=1, size=args.size, folds=1, test_fraction=0.0,
                              direction="oblique")
        print(f"phantom {args.size} written in {time.perf_counter() - start:.1f} s", flush=True)
        case = cohort / "cases" / "case000"
        models = {"small": demo_paths()}
        if "paper" in args.presets:
            models["paper"] = write_paper_models(tmp / "models", args.seed, spacing_choice(args.seg_spacing))
        report = {"size": args.size, "seg_spacing": args.seg_spacing, "device": args.device,
                  "cpu_count": os.cpu_count(),
                  "parameters": {preset: parameter_counts(models[preset]) for preset in args.presets}, "runs": []}
        for preset in args.presets:
            spec = ",".join(f"{stage}={path}" for stage, path in models[preset].items())
            for threads in args.threads:
                run = run_once(case, tmp / f"out-{preset}-{threads}", True, threads, models=spec, device=args.device)
                run.update(preset=preset, threads=threads, device=args.device)
                report["runs"].append(run)
                print(f"{preset}, {threads} thread(s): {run['seconds']:.1f} s, {run['cpu_seconds']:.1f} CPU s, "
                      f"peak {run['peak_rss_mb']:.0f} MB, "
                      f"{run['candidates']} candidates", flush=True)
    report["table"] = table(report["runs"])
    print(report["table"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
