"""Every registered network can be rebuilt from a checkpoint in a fresh interpreter (no prior import needed)."""

import subprocess
import sys

from LNStagingLib.models import checkpoint, identification, patient, roi_cnn, stage2, unet  # noqa: F401


def test_model_modules_cover_every_registered_network():
    library = {name for name, (cls, _) in checkpoint.MODEL_REGISTRY.items() if cls.__module__.startswith("LNStagingLib.")}
    assert set(checkpoint.MODEL_MODULES) == library
    for name, module in checkpoint.MODEL_MODULES.items():
        assert checkpoint.MODEL_REGISTRY[name][0].__module__ == module


def test_fresh_process_loads_a_checkpoint_by_name(tmp_path):
    model = unet.AttentionUNet(unet.unet_config("tiny"))
    path = tmp_path / "seg.pt"
    digest = checkpoint.save_checkpoint(path, model, model.config)
    code = ("import sys; from LNStagingLib.models.checkpoint import load_model; "
            f"m, c, p = load_model({str(path)!r}, {digest!r}); print(type(m).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "AttentionUNet"
