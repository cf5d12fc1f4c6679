"""Network inputs of the stage-1 U-Net and the identifier: CT (+ PET) as normalised channels on the CT grid.

Normalisation uses fixed numbers, never per-case statistics, so that a window's input depends only on its own
voxels and the same CT gives the same input in training, sliding-window inference and identification: either a
fixed HU window, or nnU-Net's CT scheme with the training set's foreground statistics stored in the checkpoint.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import DatasetError, GeometryError, ModelError
from ..io.resample import require_same_grid


def _float32_copy(values: np.ndarray) -> np.ndarray:
    """A float32 copy that the normalisations below change in place: one image-sized array per channel and no
    temporaries (a whole CT is 300 MB in float32; issue 32), the same float32 arithmetic in the same order."""
    return np.array(values, dtype=np.float32)


def normalise_ct(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU clipped to the window and mapped to [-1, 1]."""
    low, high = window
    centre, half = (high + low) / 2.0, (high - low) / 2.0
    values = _float32_copy(hu)
    np.clip(values, low, high, out=values)
    values -= centre
    values /= half
    return values


def normalise_ct_nnunet(hu: np.ndarray, statistics: tuple[float, ...]) -> np.ndarray:
    """nnU-Net's CT normalisation: HU clipped to [p0.5, p99.5] of the training foreground, then (HU - mean) / sd."""
    low, high, mean, sd = statistics
    values = _float32_copy(hu)
    np.clip(values, low, high, out=values)
    values -= np.float32(mean)
    values /= np.float32(sd)
    return values


def ct_foreground_statistics(foreground_hu: np.ndarray) -> tuple[float, float, float, float]:
    """(p0.5, p99.5, mean, sd) of the training set's foreground HU, as nnU-Net's dataset fingerprint computes them."""
    values = np.asarray(foreground_hu, np.float64).ravel()
    if values.size < 2:
        raise DatasetError("nnU-Net CT normalisation needs foreground voxels (lymph nodes) in the training cases.")
    return (float(np.percentile(values, 0.5)), float(np.percentile(values, 99.5)), float(values.mean()),
            float(max(values.std(), 1e-8)))


def _normalised_ct(config, hu: np.ndarray) -> np.ndarray:
    if getattr(config, "ct_normalisation", "window") == "nnunet":
        if not config.ct_statistics:
            raise ModelError("This network normalises the CT with its training set's statistics, but none are "
                                "stored in its configuration; retrain it or use a checkpoint written by training.")
        return normalise_ct_nnunet(hu, config.ct_statistics)
    return normalise_ct(hu, config.ct_window)


def normalise_pet(suv: np.ndarray, max_suv: float) -> np.ndarray:
    """SUV clipped to [0, max_suv] and scaled to [0, 1] x 4 (so a node with SUV 5 is about 1)."""
    values = _float32_copy(suv)
    np.clip(values, 0.0, max_suv, out=values)
    values *= 4.0 / max_suv
    return values


def network_channels(config, ct: sitk.Image, pet: sitk.Image | None = None) -> np.ndarray:
    """[C, z, y, x] float32: normalised CT, and normalised PET when the network uses it (PET must be on the CT grid)."""
    channels = [_normalised_ct(config, sitk.GetArrayViewFromImage(ct))]
    if config.use_pet:
        if pet is None:
            raise GeometryError("This model needs the PET as a second input channel; give the PET (in SUV).")
        require_same_grid(pet, ct, "PET")
        channels.append(normalise_pet(sitk.GetArrayViewFromImage(pet), config.pet_max_suv))
    return channels[0][None] if len(channels) == 1 else np.stack(channels)


def attention_array(attention: sitk.Image, ct: sitk.Image) -> np.ndarray:
    """[1, z, y, x] float32 attention in [0, 1] on the CT grid."""
    require_same_grid(attention, ct, "attention map")
    values = sitk.GetArrayFromImage(attention).astype(np.float32)
    return np.clip(values, 0.0, 1.0)[None]


def channel_pad_values(config) -> list[float]:
    """Value of each input channel outside the image: air (-1024 HU) normalised for the CT, 0 SUV for the PET."""
    air = float(_normalised_ct(config, np.array([-1024.0], np.float32))[0])
    return [air] + ([0.0] if config.use_pet else [])


def pad_channels(channels: np.ndarray, shape: tuple[int, ...], values: list[float]) -> np.ndarray:
    """Pad [C, z, y, x] at the far end of each axis up to ``shape`` (no-op where already large enough)."""
    pad = [(0, max(0, t - s)) for s, t in zip(channels.shape[1:], shape)]
    if not any(p for _, p in pad):
        return channels
    return np.stack([np.pad(c, pad, constant_values=v) for c, v in zip(channels, values)])
