#!/usr/bin/env python
"""One forward pass of each paper-size network on every available CPU engine, timed and compared in one run.

The networks (issue 32): the stage-1 attention U-Net on one 80 x 192 x 160 window, the identifier (the U-Net encoder
plus its head) on one 80 x 96 x 96 patch, and the stage-2 ResNet18-style ROI CNN on a batch of 48^3 CT + PET
patches. Weights come from a fixed seed (no paper-size weights exist), inputs are seeded random arrays (a mask
inside each patch, an attention map in [0, 1]): the timings are the architecture's, and the differences are those of
the engine, which is what the tolerance is about (issue 32: probabilities within 1e-3 of the torch eager path).
Random inputs understate an engine's error: on real-content windows of the full-size benchmark phantom (half of the
CT channel at its air floor) OpenVINO f32 differed from torch by 1.5-2.3e-2 in probability, against 3.4e-4 here
(docs/PERFORMANCE.md, "OpenVINO in the pipeline"); check an engine on real windows before trusting this table.

Engines: torch eager (the reference; what the pipeline runs), torch with channels_last_3d, torch under bf16
autocast, ONNX Runtime and OpenVINO (f32, and bf16 where the CPU has it). An engine that is not installed, or fails
to convert a network, is reported as such, not skipped silently. The pipeline's own venv has neither ONNX Runtime
nor OpenVINO; run this from a venv that has them (docs/PERFORMANCE.md, issue 32 section, "Engines"):

  python benchmarks/engine_benchmark.py --threads 1 --repeats 2
  python benchmarks/engine_benchmark.py --networks identifier cnn --unet-window 80x96x96   # quicker

Every engine runs each network ``--repeats`` times, interleaved with the others (round robin), and the best time is
kept: on a shared machine the load changes within seconds, so the load average is printed beside the table.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NETWORKS = ("unet", "identifier", "cnn")
TOLERANCE = 1e-3  # issue 32: probabilities max |diff| against the torch eager path


def build_network(name: str, seed: int, unet_window=None, cnn_batch: int = 4, preset: str = "paper"):
    """(model in eval mode, example inputs, probability function) of one network of ``preset`` size."""
    from LNStagingLib.models import unet
    from LNStagingLib.models.identification import ID_PATCH, IdentifierConfig, InstanceIdentifier
    from LNStagingLib.models.roi_cnn import RoiCNN, roi_cnn_config

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    paper = {k: v for k, v in unet.PRESETS[preset].items() if k != "ct_normalisation"} | {"preset": preset}
    if name == "unet":
        config = unet.UNetConfig(**paper | ({"patch_size": unet_window} if unet_window else {}))
        model = unet.AttentionUNet(config)
        shape = (1, config.in_channels, *config.patch_size)
        inputs = (torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)),
                  torch.from_numpy(rng.random((1, 1, *config.patch_size), dtype=np.float32)))
        return model.eval(), inputs, lambda out: torch.softmax(out.float(), dim=1)[:, 1]
    if name == "identifier":
        config = IdentifierConfig(**paper, id_patch_size=ID_PATCH[preset], id_hidden=128)
        model = InstanceIdentifier(config)
        patch = config.id_patch_size
        mask = np.zeros((1, 1, *patch), np.float32)
        mask[..., patch[0] // 4:patch[0] // 2, patch[1] // 4:patch[1] // 2, patch[2] // 4:patch[2] // 2] = 1.0
        inputs = (torch.from_numpy(rng.standard_normal((1, config.in_channels, *patch), dtype=np.float32)),
                  torch.from_numpy(mask))
        return model.eval(), inputs, lambda out: torch.softmax(out.float(), dim=1)[:, 1]
    if name == "cnn":
        config = roi_cnn_config(preset, in_channels=2)
        model = RoiCNN(config)
        for module in model.modules():  # non-trivial batch-norm statistics, as after training
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        mask = np.zeros((cnn_batch, 1, 48, 48, 48), np.float32)
        mask[..., 16:32, 16:32, 16:32] = 1.0
        inputs = (torch.from_numpy(rng.standard_normal((cnn_batch, 2, 48, 48, 48), dtype=np.float32)),
                  torch.from_numpy(mask))
        return model.eval(), inputs, lambda out: torch.sigmoid(out[0].float())
    raise SystemExit(f"unknown network {name!r}; choose from {', '.join(NETWORKS)}")


def first_output(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def torch_engines(model, inputs) -> dict:
    """name -> callable(inputs) -> network output, for the torch eager variants."""
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)

    def eager(*x):
        with torch.inference_mode():
            return model(*x)

    def eager_channels_last(*x):
        with torch.inference_mode():
            return channels_last(*(t.contiguous(memory_format=torch.channels_last_3d) for t in x))

    def eager_bf16(*x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(*x)

    return {"torch eager": eager, "torch channels_last_3d": eager_channels_last, "torch bf16 autocast": eager_bf16}


def onnx_bytes(model, inputs) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(model, inputs, buffer, input_names=["x", "mask"], dynamo=False, opset_version=17)
    return buffer.getvalue()


def onnxruntime_engine(model, inputs, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes(model, inputs), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda *x: torch.from_numpy(session.run(None, dict(zip(names, (t.numpy() for t in x))))[0])


def openvino_engine(model, inputs, threads: int, precision: str):
    # Importing openvino starts its usage telemetry (openvino.tools.ovc writes a client id and a use count under the
    # home folder unless the user opted out); it falls back to its own stub when the telemetry package cannot be
    # imported, which a None in sys.modules arranges.
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
    import openvino as ov

    converted = ov.convert_model(model, example_input=inputs)
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                          "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda *x: torch.from_numpy(np.array(request.infer([t.numpy() for t in x])[0]))


def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic on this CPU (AVX512-BF16 or AMX), from /proc/cpuinfo on Linux."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def engines_for(model, inputs, threads: int) -> tuple[dict, dict]:
    """(name -> callable, name -> why not available) for every engine."""
    engines, missing = torch_engines(model, inputs), {}
    builders = {"onnxruntime": lambda: onnxruntime_engine(model, inputs, threads),
                "openvino f32": lambda: openvino_engine(model, inputs, threads, "f32")}
    if cpu_has_bf16():
        builders["openvino bf16"] = lambda: openvino_engine(model, inputs, threads, "bf16")
    for name, build in builders.items():
        try:
            engines[name] = build()
        except Exception as error:  # noqa: BLE001 - an engine that cannot run is a result of the benchmark
            missing[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
    return engines, missing


def compare(name: str, seed: int, threads: int, repeats: int, unet_window=None, cnn_batch: int = 4,
            preset: str = "paper") -> dict:
    """Best-of-``repeats`` seconds and max |probability diff| against torch eager, per engine, for one network."""
    model, inputs, probability = build_network(name, seed, unet_window, cnn_batch, preset)
    engines, missing = engines_for(model, inputs, threads)
    reference = first_output(engines["torch eager"](*inputs)).float()  # also the warm-up of torch
    diffs, output_diffs = {"torch eager": 0.0}, {"torch eager": 0.0}
    for engine, run in engines.items():
        if engine != "torch eager":
            output = first_output(run(*inputs)).float()  # also the engine's warm-up
            diffs[engine] = float((probability(output) - probability(reference)).abs().max())
            output_diffs[engine] = float((output - reference).abs().max())
    seconds = {engine: float("inf") for engine in engines}
    for _ in range(repeats):
        for engine, run in engines.items():
            start = time.perf_counter()
            run(*inputs)
            seconds[engine] = min(seconds[engine], time.perf_counter() - start)
    return {"network": name, "input": list(inputs[0].shape), "seconds": seconds, "max_abs_diff": diffs,
            "max_abs_logit_diff": output_diffs, "missing": missing, "load_average": os.getloadavg()[0]}


def table(results: list[dict]) -> str:
    lines = ["| network | input | engine | seconds | x eager | max abs prob diff | within 1e-3 | max abs logit diff |",
             "|---|---|---|---|---|---|---|---|"]
    for result in results:
        eager = result["seconds"]["torch eager"]
        for engine, seconds in result["seconds"].items():
            diff = result["max_abs_diff"][engine]
            lines.append(f"| {result['network']} | {'x'.join(map(str, result['input']))} | {engine} | {seconds:.2f} "
                         f"| {eager / seconds:.2f} | {diff:.1e} | {'yes' if diff <= TOLERANCE else 'no'} "
                         f"| {result['max_abs_logit_diff'][engine]:.1e} |")
        for engine, why in result["missing"].items():
            lines.append(f"| {result['network']} | | {engine} | not run: {why} | | | | |")
    return "\n".join(lines)


def window(text: str):
    values = tuple(int(v) for v in text.lower().split("x"))
    if len(values) != 3:
        raise SystemExit("--unet-window takes ZxYxX, e.g. 80x192x160")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unet-window", type=window, help="U-Net window ZxYxX (default: the paper's 80x192x160)")
    parser.add_argument("--cnn-batch", type=int, default=4, help="ROI CNN candidates per call")
    parser.add_argument("--preset", default="paper", choices=["paper", "small"], help="network size (small: tests)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for name in args.networks:
        results.append(compare(name, args.seed, args.threads, args.repeats, args.unet_window, args.cnn_batch,
                               args.preset))
        print(f"{name} done, load average {results[-1]['load_average']:.1f}", flush=True)
    report = {"preset": args.preset, "threads": args.threads, "cpu_bf16": cpu_has_bf16(), "torch": torch.__version__,
              "load_average": os.getloadavg(), "results": results, "table": table(results)}
    print(report["table"])
    print(f"threads {args.threads}, native bf16: {report['cpu_bf16']}, load average {report['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
