"""Checkpoints that carry everything needed to rebuild a model, loaded safely.

A checkpoint is a plain dict saved with torch.save and loaded with ``torch.load(weights_only=True)``:
  {"format": FORMAT, "model": <registry name>, "config": {...dataclass fields...},
   "state_dict": {...tensors...}, "training_data": {...}, "metrics": {...}, "versions": {...}}
No pickled objects. The configuration travels inside, so loading never guesses the network's size.
The file's sha256 is checked against the catalogue (Resources/Models.json) before torch sees it.

torch is imported inside the functions that need it: the catalogue (and so the Slicer panel and ``lnstaging
--help``) imports this module before the user has installed torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ModelError
from ..io.checksums import sha256_of  # noqa: F401  (models.checkpoint.sha256_of is used widely)

if TYPE_CHECKING:
    import torch

FORMAT = "lnstaging-checkpoint/1"

# name -> (module class, config dataclass). Filled by @register_model in each network's module.
MODEL_REGISTRY: dict[str, tuple[type, type]] = {}

# name -> the module that registers it, imported on demand so that loading a checkpoint needs no prior import.
MODEL_MODULES = {
    "ln_seg_unet": "LNStagingLib.models.unet",
    "ln_instance_identifier": "LNStagingLib.models.identification",
    "roi_cnn": "LNStagingLib.models.roi_cnn",
    "stage2": "LNStagingLib.models.stage2",
    "patient_metastasis_resnet2d": "LNStagingLib.models.patient",
}


def register_model(name: str, config_class: type) -> Callable[[type], type]:
    """Class decorator: make a network constructible from a checkpoint by its registry name."""

    def decorate(cls: type) -> type:
        MODEL_REGISTRY[name] = (cls, config_class)
        cls.registry_name = name
        return cls

    return decorate


def save_checkpoint(path: Path | str, model: torch.nn.Module, config: Any, *, training_data: dict | None = None,
                    metrics: dict | None = None, extra: dict | None = None) -> str:
    """Save a checkpoint; return its sha256. ``config`` is the model's config dataclass instance."""
    import torch

    from .. import __version__

    name = getattr(model, "registry_name", None)
    if name not in MODEL_REGISTRY:
        raise ModelError(f"{type(model).__name__} is not registered with @register_model; it cannot be saved.")
    payload = {
        "format": FORMAT,
        "model": name,
        "config": dataclasses.asdict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training_data": training_data or {},
        "metrics": metrics or {},
        "extra": extra or {},
        "versions": {"lnstaging": __version__, "torch": str(torch.__version__)},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    tmp.replace(path)
    return sha256_of(path)


def load_checkpoint(path: Path | str, expected_sha256: str | None = None, map_location: str = "cpu") -> dict:
    """Read a checkpoint dict after checking its sha256 (when given). Never unpickles objects."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model file {path} does not exist: check the model catalogue or import the weights file.")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256.lower():
            raise ModelError(f"Model file {path.name} has sha256 {actual[:12]}..., expected {expected_sha256[:12]}...: "
                             "the file is corrupt or not the one in the catalogue; download or import it again.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        raise ModelError(f"{path.name} is not a readable LNStaging checkpoint ({type(error).__name__}).") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path.name} is not an LNStaging checkpoint (format {FORMAT} expected).")
    return payload


def build_model(payload: dict) -> tuple[torch.nn.Module, Any]:
    """Instantiate the registered network from a loaded checkpoint and load its weights (strict).

    A checkpoint whose config or weights do not fit the network (edited, or from another version) is a one-line
    ModelError, never a traceback."""
    name = payload.get("model")
    if not isinstance(name, str) or not isinstance(payload.get("config"), dict) \
            or not isinstance(payload.get("state_dict"), dict):
        raise ModelError("the checkpoint lacks its model name, config or weights: it is not a complete LNStaging "
                         "checkpoint; train or download it again.")
    if name not in MODEL_REGISTRY and name in MODEL_MODULES:
        importlib.import_module(MODEL_MODULES[name])
    if name not in MODEL_REGISTRY:
        raise ModelError(f"Checkpoint holds model {name!r}, which this version of LNStaging does not know.")
    cls, config_class = MODEL_REGISTRY[name]
    field_names = {f.name for f in dataclasses.fields(config_class)}
    try:
        config = config_class(**{k: _as_field(v) for k, v in payload["config"].items() if k in field_names})
        model = cls(config)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (TypeError, ValueError, KeyError, RuntimeError, ZeroDivisionError) as error:
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ModelError(f"the checkpoint's {name} config or weights do not fit the network ({first}): use a "
                         "checkpoint written by this version of LNStaging.") from None
    model.eval()
    return model, config


def _as_field(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def load_model(path: Path | str, expected_sha256: str | None = None, map_location: str = "cpu"):
    """Convenience: load + build. Returns (model, config, payload)."""
    payload = load_checkpoint(path, expected_sha256, map_location)
    model, config = build_model(payload)
    return model, config, payload
