"""Patch sampling for stage-1 training (paper 2, sec. III-A): foreground oversampling + informative negatives.

Of every batch, at least a third of the patches (ceil(B/3)) are centred near a random foreground voxel, as in
nnU-Net. The other patches are "negatives": with informative negative selection (the paper's scheme) each is
placed so that it contains a random voxel with attention > 0, so no patch is wasted on regions the attention gate
zeroes anyway; with it off (the ablation), negatives are placed uniformly over the volume. Deterministic for a
given numpy Generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.seg_inputs import pad_channels

MAX_STORED_VOXELS = 200_000  # per case and kind: a random subset of candidate centre voxels is enough


@dataclass
class TrainingCase:
    """One case in memory, padded to at least the patch size. ``label`` is 0/1 LN, attention in [0, 1]."""

    case_id: str
    channels: np.ndarray  # [C, z, y, x] float32, normalised
    attention: np.ndarray  # [1, z, y, x] float32
    label: np.ndarray  # [z, y, x] uint8
    foreground: np.ndarray  # [n, 3] voxel indices with label > 0 (subset)
    informative: np.ndarray  # [m, 3] voxel indices with attention > 0 (subset)

    @classmethod
    def build(cls, case_id: str, channels: np.ndarray, attention: np.ndarray, label: np.ndarray,
              patch_size: tuple[int, int, int], pad_values: list[float], seed: int = 0) -> "TrainingCase":
        shape = tuple(max(s, p) for s, p in zip(label.shape, patch_size))
        channels = pad_channels(channels.astype(np.float32), shape, pad_values)
        attention = pad_channels(attention.astype(np.float32), shape, [0.0])
        label = pad_channels((label > 0).astype(np.uint8)[None], shape, [0])[0]
        rng = np.random.default_rng(seed)
        return cls(case_id, channels, attention, label, _voxel_subset(label > 0, rng),
                   _voxel_subset(attention[0] > 0, rng))


def _voxel_subset(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = np.flatnonzero(mask)
    if len(flat) > MAX_STORED_VOXELS:
        flat = np.sort(rng.choice(flat, MAX_STORED_VOXELS, replace=False))
    return np.stack(np.unravel_index(flat, mask.shape), axis=1) if len(flat) else np.zeros((0, 3), np.int64)


class PatchSampler:
    """Draws training batches (channels, attention, label) from a list of TrainingCase."""

    def __init__(self, cases: list[TrainingCase], patch_size: tuple[int, int, int], batch_size: int,
                 informative_negatives: bool = True, foreground_fraction: float = 1.0 / 3.0):
        if not cases:
            raise ValueError("No training cases.")
        self.cases = cases
        self.patch_size = tuple(patch_size)
        self.batch_size = int(batch_size)
        self.informative_negatives = informative_negatives
        self.n_foreground = math.ceil(foreground_fraction * self.batch_size - 1e-9)
        self.with_foreground = [i for i, c in enumerate(cases) if len(c.foreground)]
        self.with_attention = [i for i, c in enumerate(cases) if len(c.informative)]

    def _start_containing(self, voxel: np.ndarray, shape, rng) -> tuple[int, ...]:
        """A patch start so that ``voxel`` lies inside the patch at a random position, clipped to the volume."""
        starts = []
        for v, p, s in zip(voxel, self.patch_size, shape):
            start = int(v) - int(rng.integers(0, p))
            starts.append(min(max(start, 0), s - p))
        return tuple(starts)

    def draw(self, rng: np.random.Generator, kind: str) -> tuple[int, tuple[int, ...]]:
        """(case index, patch start) of one patch. kind: 'foreground' or 'negative'."""
        if kind == "foreground" and self.with_foreground:
            index = self.with_foreground[int(rng.integers(len(self.with_foreground)))]
            case = self.cases[index]
            voxel = case.foreground[int(rng.integers(len(case.foreground)))]
            return index, self._start_containing(voxel, case.label.shape, rng)
        if self.informative_negatives and self.with_attention:
            index = self.with_attention[int(rng.integers(len(self.with_attention)))]
            case = self.cases[index]
            voxel = case.informative[int(rng.integers(len(case.informative)))]
            return index, self._start_containing(voxel, case.label.shape, rng)
        index = int(rng.integers(len(self.cases)))
        shape = self.cases[index].label.shape
        return index, tuple(int(rng.integers(0, s - p + 1)) for s, p in zip(shape, self.patch_size))

    def kinds(self) -> list[str]:
        return ["negative"] * (self.batch_size - self.n_foreground) + ["foreground"] * self.n_foreground

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x [B, C, *patch], attention [B, 1, *patch], label [B, 1, *patch] (int64)."""
        xs, atts, ys = [], [], []
        for kind in self.kinds():
            index, start = self.draw(rng, kind)
            case = self.cases[index]
            region = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size))
            xs.append(case.channels[(slice(None), *region)])
            atts.append(case.attention[(slice(None), *region)])
            ys.append(case.label[region][None])
        return np.stack(xs), np.stack(atts), np.stack(ys).astype(np.int64)
