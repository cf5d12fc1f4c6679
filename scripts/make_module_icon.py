"""Draw LNStaging/Resources/Icons/LNStaging.png (128x128): a PET-heat node chain over a grey CT-like disc.

Run once with the project's Python (numpy + Pillow); the PNG is committed.
"""

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 128
OUT = Path(__file__).resolve().parents[1] / "LNStaging" / "Resources" / "Icons" / "LNStaging.png"


def heat(value: np.ndarray) -> np.ndarray:
    """Black-red-yellow-white ramp, like Slicer's PET-Heat colour map."""
    v = np.clip(value, 0, 1)[..., None]
    return np.concatenate([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)


def main() -> None:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    rgba = np.zeros((SIZE, SIZE, 4))
    body = ((x - 64) / 58) ** 2 + ((y - 64) / 50) ** 2 <= 1
    rgba[body, :3] = 0.35
    rgba[body, 3] = 1.0
    nodes = [(34, 44, 9, 0.45), (52, 70, 11, 0.7), (76, 58, 13, 1.0), (96, 82, 8, 0.55)]
    for (ax, ay, _, _), (bx, by, _, _) in zip(nodes, nodes[1:]):  # the chain a metastasis travels along
        t = np.clip(((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
        line = np.hypot(x - (ax + t * (bx - ax)), y - (ay + t * (by - ay))) < 2.0
        rgba[line, :3] = 0.8
        rgba[line, 3] = 1.0
    for cx, cy, r, uptake in nodes:
        d = np.hypot(x - cx, y - cy)
        inside = d <= r
        rgba[inside, :3] = heat(uptake * (1.15 - 0.6 * d[inside] / r))
        rgba[inside, 3] = 1.0
        ring = (d > r) & (d <= r + 2.0)
        rgba[ring, :3] = (0.2, 0.9, 0.3)  # the contour (GTVn)
        rgba[ring, 3] = 1.0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rgba * 255).astype(np.uint8), "RGBA").save(OUT)
    print(OUT)


if __name__ == "__main__":
    main()
