"""Which code runs a network's forward pass at inference: PyTorch (always there) or OpenVINO (optional, faster on
CPUs; issue 32, docs/PERFORMANCE.md).

``lnstaging run --engine openvino`` runs the stage-1 U-Net windows and the instance identifier's patches through
OpenVINO at f32 (OpenVINO's CPU default is bf16 where the CPU has it, which moved the U-Net's probabilities by 7e-3;
f32 stays within 1e-3 of PyTorch, measured and tested). The stage-2 CNN, the GNN and the patient model stay on
PyTorch: they take seconds, and their inputs change shape from case to case.

OpenVINO is imported with its usage telemetry off. Importing ``openvino`` as it is starts that telemetry (its
converter, ``openvino.tools.ovc``, writes a client id and a use count under the home folder, for Google Analytics,
unless the user opted out), which a hospital workstation must not do; OpenVINO falls back to its own stub when the
telemetry package cannot be imported, and that is what ``import_openvino`` arranges (Testing/test_engine.py checks
the home folder stays empty). The network is converted through OpenVINO's PyTorch front end. One compiled network
per input shape, compiled on first use; a run feeds
the same window (or patch) shape every time, so it compiles once or twice. Imports nothing heavy at module level
(the command line's parsers read ENGINES).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

from ..errors import LNStagingError

ENGINES = ("torch", "openvino")
#: The oldest OpenVINO the engine is tested with (the last release with an Intel-Mac wheel; docs/PERFORMANCE.md).
OPENVINO_MINIMUM = "2025.4.1"


def engine_version(name: str) -> str | None:
    """The installed version of an engine's package, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def check_engine(name: str, device: str = "cpu") -> str:
    """The engine a run asked for, refused in one line when it cannot run here."""
    if name not in ENGINES:
        raise LNStagingError(f"--engine {name!r} is not an engine: choose one of {', '.join(ENGINES)}.")
    if name == "openvino":
        if device != "cpu":
            raise LNStagingError("--engine openvino runs on the CPU: use --device cpu, or --engine torch on the GPU.")
        if engine_version("openvino") is None:
            raise LNStagingError("--engine openvino needs OpenVINO: pip install 'lnstaging[openvino]' "
                                 "(or run with --engine torch, the default).")
    return name


def engine_record(name: str) -> dict:
    """What ran, for provenance: the engine, its version and its arithmetic."""
    if name == "openvino":
        return {"name": "openvino", "version": engine_version("openvino"), "precision": "f32"}
    return {"name": "torch", "version": engine_version("torch"), "precision": "f32"}


def import_openvino():
    """The openvino module with its telemetry replaced by OpenVINO's stub (see the module's docstring)."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # None in sys.modules: the import raises ImportError
    import openvino

    return openvino


def engine_text(name: str) -> str:
    """The engine in a user's words, for the faces' "what ran" lines."""
    record = engine_record(name)
    if name == "openvino":
        return f"OpenVINO {record['version']} at f32 (within 1e-3 of PyTorch: docs/PERFORMANCE.md)"
    return f"PyTorch {record['version']}"


class OpenVinoNetwork:
    """Calls like the torch module at inference: ``network(*inputs) -> torch.Tensor`` (the module's first output)."""

    def __init__(self, model, threads: int | None = None, precision: str = "f32"):
        import torch

        self.model = model
        self.threads = threads if threads is not None else torch.get_num_threads()
        self.precision = precision  # the pipeline's is f32; benchmarks/engine_benchmark.py also measures bf16
        self._compiled: dict[tuple, object] = {}

    def _compile(self, inputs: tuple):
        ov = import_openvino()
        from openvino.frontend import FrontEndManager
        from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

        self.model.eval()
        decoder = TorchScriptPythonDecoder(self.model, example_input=inputs)
        front_end = FrontEndManager().load_by_framework("pytorch")
        converted = front_end.convert(front_end.load(decoder))
        converted.reshape({port: ov.PartialShape(list(t.shape)) for port, t in zip(converted.inputs, inputs)})
        return ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": self.precision,
                                                          "INFERENCE_NUM_THREADS": int(self.threads)})

    def __call__(self, *inputs):
        import numpy as np
        import torch

        inputs = tuple(t for t in inputs if t is not None)
        key = tuple((tuple(t.shape), str(t.dtype)) for t in inputs)
        if key not in self._compiled:
            self._compiled[key] = self._compile(inputs)
        request = self._compiled[key].create_infer_request()
        result = request.infer([np.ascontiguousarray(t.detach().cpu().numpy()) for t in inputs])
        return torch.from_numpy(np.array(result[0], dtype=np.float32, copy=True))


def inference_network(model, engine: str = "torch", threads: int | None = None):
    """What to call for the forward pass: the module itself (torch) or its OpenVINO translation."""
    return OpenVinoNetwork(model, threads) if engine == "openvino" else model
