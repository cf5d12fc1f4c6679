"""Stage-1 inference: sliding-window LN segmentation that skips windows with no attention.

Windows tile the volume nnU-Net style (step = window x (1 - overlap), the last window flush with the far edge) and
are blended with MONAI's Gaussian importance map. A window whose attention is zero everywhere is not run: the
attention gate sits right before the 1x1x1 head (models/unet.py), so such a window's logits are the head's bias at
every voxel, exactly. The skipped window contributes exactly what the network would have produced, through the same
arithmetic, so the skipping result is identical to the full sliding window (Testing/test_stage1_inference.py), not
an approximation. The baseline network (no attention) never skips. The windows that run go through the network in
batches of a fixed size (3x faster per window on one CPU thread; docs/PERFORMANCE.md).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import SimpleITK as sitk
import torch
from monai.data.utils import compute_importance_map

from ..models.unet import samples_per_call
from ..models.seg_inputs import attention_array, channel_pad_values, network_channels, pad_channels
from ..progress import Progress


#: Windows per network call: on a CPU thread a batch of 2-4 windows runs ~3x faster per window than one at a time
#: (benchmarks/stage1_benchmark.py); logits differ from batch 1 by ~1e-4 (other convolution kernels).
WINDOW_BATCH = 4


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start indices along one axis: regular steps, the last window ending at the volume's edge."""
    if size <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    n = math.ceil((size - window) / step) + 1
    return sorted({min(i * step, size - window) for i in range(n)})


def window_slices(shape: tuple[int, int, int], window: tuple[int, int, int], overlap: float) -> list[tuple[slice, ...]]:
    axes = [window_starts(s, w, overlap) for s, w in zip(shape, window)]
    return [tuple(slice(a, a + w) for a, w in zip(starts, window)) for starts in itertools.product(*axes)]


def sliding_window_logits(model, channels: np.ndarray, attention: np.ndarray | None, *, window=None,
                          overlap: float = 0.5, skip_empty: bool = True, device: str = "cpu",
                          batch_size: int | None = None, progress: Progress | None = None) -> tuple[np.ndarray, dict]:
    """Blended logits [n_classes, z, y, x] of ``model`` over ``channels`` [C, z, y, x] (+ attention [1, z, y, x]).

    Returns (logits, stats) with stats = {"windows": n, "run": n_run, "skipped": n_skipped}. Volumes smaller than the
    window are padded (CT air, PET 0, attention 0) and cropped back. The windows that run go through the network
    ``batch_size`` at a time (default: WINDOW_BATCH, fewer when the network's windows are large: unet.samples_per_call;
    the last batch filled up with copies, so every window runs in a batch of the same size and its logits do not
    depend on which windows ran beside it); the windows are blended in their tiling order, so skipping and the full
    sliding window give the same bits.
    """
    config = model.config
    window = tuple(window or config.patch_size)
    skip_empty = skip_empty and config.use_attention
    batch_size = samples_per_call(config, window, WINDOW_BATCH) if batch_size is None else max(1, int(batch_size))
    shape = channels.shape[1:]
    padded = tuple(max(s, w) for s, w in zip(shape, window))
    image = torch.from_numpy(pad_channels(channels, padded, channel_pad_values(config)).astype(np.float32, copy=False))
    att = (torch.from_numpy(pad_channels(attention, padded, [0.0]).astype(np.float32, copy=False))
           if attention is not None else None)

    weight = compute_importance_map(window, mode="gaussian", sigma_scale=0.125, device="cpu")
    logit_sum = torch.zeros((config.n_classes, *padded), dtype=torch.float32)
    weight_sum = torch.zeros(padded, dtype=torch.float32)
    zero_logits = model.zero_attention_logits().float().cpu().view(-1, 1, 1, 1) if skip_empty else None
    slices = window_slices(padded, window, overlap)
    pending: list[tuple[tuple[slice, ...], int | None]] = []  # (region, index in the batch or None if skipped)
    batch: list[tuple[slice, ...]] = []

    def run_batch() -> torch.Tensor:
        n = len(batch)
        fill = [batch[-1]] * (batch_size - n)
        x = torch.stack([image[(slice(None), *region)] for region in batch + fill]).to(device)
        a = (torch.stack([att[(slice(None), *region)] for region in batch + fill]).to(device)
             if att is not None else None)
        return model(x, a)[:n].float().cpu()

    def blend_pending() -> None:
        outputs = run_batch() if batch else None
        for region, slot in pending:
            logits = zero_logits.expand(-1, *window) if slot is None else outputs[slot]
            logit_sum[(slice(None), *region)] += logits * weight
            weight_sum[region] += weight
        pending.clear()
        batch.clear()

    n_run = 0
    model.eval()
    with torch.inference_mode():
        for i, region in enumerate(slices):
            if progress is not None:
                progress.step(i / len(slices), f"segmenting window {i + 1}/{len(slices)}")
            if skip_empty and not bool(torch.any(att[(slice(None), *region)] > 0)):
                pending.append((region, None))
                continue
            pending.append((region, len(batch)))
            batch.append(region)
            n_run += 1
            if len(batch) == batch_size:
                blend_pending()
        blend_pending()
    if progress is not None:
        progress.step(1.0, "segmentation done")
    logit_sum /= weight_sum
    logits = logit_sum[(slice(None), *(slice(0, s) for s in shape))]
    return logits.numpy(), {"windows": len(slices), "run": n_run, "skipped": len(slices) - n_run}


def foreground_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax probability of the LN class (channel 1) from [n_classes, ...] logits."""
    return torch.softmax(torch.from_numpy(logits), dim=0)[1].numpy().astype(np.float32)


def segment_lymph_nodes(model, ct: sitk.Image, attention: sitk.Image | None, pet: sitk.Image | None = None, *,
                        overlap: float = 0.5, skip_empty: bool = True, device: str = "cpu",
                        progress: Progress | None = None) -> tuple[sitk.Image, dict]:
    """LN probability map (float32, on the CT grid, geometry copied) and window statistics.

    ``attention`` and ``pet`` must be on the CT grid; the attention is required when the model uses it.
    """
    channels = network_channels(model.config, ct, pet)
    att = attention_array(attention, ct) if (attention is not None and model.config.use_attention) else None
    logits, stats = sliding_window_logits(model, channels, att, overlap=overlap, skip_empty=skip_empty,
                                          device=device, progress=progress)
    probability = sitk.GetImageFromArray(foreground_probability(logits))
    probability.CopyInformation(ct)
    return probability, stats
