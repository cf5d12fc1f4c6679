"""Synthetic patients whose node labels depend on a hidden patient-level state (shared by the stage-2 relational
and review-state tests): feature 0 decides which nodes of a diseased patient are positive, feature 1 carries the
patient's state under ``noise``, so only the other nodes of the patient reveal it."""

from __future__ import annotations

import numpy as np
import torch

F_DIM = 4


def patients(n_patients: int, seed: int, noise: float):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_patients):
        n = int(rng.integers(6, 16))
        diseased = float(rng.uniform() < 0.5)
        f = rng.normal(size=(n, F_DIM)).astype(np.float32)
        f[:, 1] = diseased + rng.normal(0, noise, n)
        labels = (diseased * (f[:, 0] > 0)).astype(np.float32)
        out.append((torch.from_numpy(f), torch.from_numpy(labels)))
    return out
