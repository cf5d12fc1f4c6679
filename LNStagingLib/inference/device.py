"""The torch device a command runs on, checked once with an error a user can act on."""

from __future__ import annotations

from ..errors import ModelError


def resolve_device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but no CUDA GPU is available to PyTorch; use --device cpu.")
    return name
