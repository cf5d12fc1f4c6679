"""Network inputs of the stage-1 U-Net and the identifier: CT (+ PET) as normalised channels on the CT grid.

Fixed intensity windows (not per-case statistics) so that a window's input depends only on its own voxels and the
same CT gives the same input in training, sliding-window inference and identification.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..anatomy.structures import same_grid
from ..errors import GeometryError


def normalise_ct(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU clipped to the window and mapped to [-1, 1]."""
    low, high = window
    centre, half = (high + low) / 2.0, (high - low) / 2.0
    return ((np.clip(hu.astype(np.float32), low, high) - centre) / half).astype(np.float32)


def normalise_pet(suv: np.ndarray, max_suv: float) -> np.ndarray:
    """SUV clipped to [0, max_suv] and scaled to [0, 1] x 4 (so a node with SUV 5 is about 1)."""
    return (np.clip(suv.astype(np.float32), 0.0, max_suv) * (4.0 / max_suv)).astype(np.float32)


def require_same_grid(image: sitk.Image, reference: sitk.Image, what: str) -> None:
    if not same_grid(image, reference):
        raise GeometryError(f"The {what} is not on the CT grid (size, spacing, origin or direction differ); "
                            "resample it onto the CT first.")


def network_channels(config, ct: sitk.Image, pet: sitk.Image | None = None) -> np.ndarray:
    """[C, z, y, x] float32: normalised CT, and normalised PET when the network uses it (PET must be on the CT grid)."""
    channels = [normalise_ct(sitk.GetArrayViewFromImage(ct), config.ct_window)]
    if config.use_pet:
        if pet is None:
            raise GeometryError("This model needs the PET as a second input channel; give the PET (in SUV).")
        require_same_grid(pet, ct, "PET")
        channels.append(normalise_pet(sitk.GetArrayViewFromImage(pet), config.pet_max_suv))
    return np.stack(channels)


def attention_array(attention: sitk.Image, ct: sitk.Image) -> np.ndarray:
    """[1, z, y, x] float32 attention in [0, 1] on the CT grid."""
    require_same_grid(attention, ct, "attention map")
    values = sitk.GetArrayFromImage(attention).astype(np.float32)
    return np.clip(values, 0.0, 1.0)[None]


def channel_pad_values(config) -> list[float]:
    """Value of each input channel outside the image: air for the CT (window minimum), 0 SUV for the PET."""
    return [-1.0] + ([0.0] if config.use_pet else [])


def pad_channels(channels: np.ndarray, shape: tuple[int, ...], values: list[float]) -> np.ndarray:
    """Pad [C, z, y, x] at the far end of each axis up to ``shape`` (no-op where already large enough)."""
    pad = [(0, max(0, t - s)) for s, t in zip(channels.shape[1:], shape)]
    if not any(p for _, p in pad):
        return channels
    return np.stack([np.pad(c, pad, constant_values=v) for c, v in zip(channels, values)])
