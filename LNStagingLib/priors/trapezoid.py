"""The isosceles-trapezium mapping of paper 2, eq. 1: signed distance (mm) -> attention score in [0, 1].

f(d) = 1 on [d_min, d_max], rises linearly over (d_min - b, d_min), falls linearly over (d_max, d_max + b),
0 elsewhere; b is the soft border (3 mm in the paper).
"""

from __future__ import annotations

import numpy as np


def trapezoid(distance: np.ndarray | float, d_min: float, d_max: float, border: float = 3.0) -> np.ndarray:
    """Eq. 1, vectorised. Returns float32 (same shape as `distance`)."""
    if not border > 0:
        raise ValueError("the soft border must be positive (3 mm in the paper)")
    if d_max < d_min:
        raise ValueError(f"d_max ({d_max}) must not be below d_min ({d_min})")
    d = np.asarray(distance, dtype=np.float32)
    rising = (d - np.float32(d_min - border)) / np.float32(border)
    falling = (np.float32(d_max + border) - d) / np.float32(border)
    return np.clip(np.minimum(rising, falling), 0.0, 1.0).astype(np.float32, copy=False)
