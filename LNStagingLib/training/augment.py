"""Stage-1 data augmentation as nnU-Net does it (the paper trains stage 1 with nnU-Net), built from MONAI transforms.

Per patch, with nnU-Net's default probabilities and ranges: rotation (+-30 degrees about each axis, p 0.2),
scaling (0.7-1.4, p 0.2), elastic deformation (sigma 9-13 voxels, magnitude 0-900, p 0.2; off by default in
nnU-Net's 3d_fullres, asked for by the paper's recipe), gamma (0.7-1.5 keeping mean and sd, p 0.3; on the inverted
image, p 0.1) and mirroring along each axis (p 0.5). Spatial transforms move the CT/PET channels and the attention
map (linear interpolation) and the label (nearest neighbour) together; gamma touches the image channels only.
Deterministic for a given numpy Generator: each batch reseeds the MONAI transforms from it.
"""

from __future__ import annotations

import math

import numpy as np

IMAGE, ATTENTION, LABEL = "image", "attention", "label"


def nnunet_augmentation():
    """The MONAI Compose applied to one patch dict {image [C,z,y,x], attention [1,z,y,x], label [1,z,y,x]}."""
    from monai.transforms import (Compose, Rand3DElasticd, RandAdjustContrastd, RandFlipd, RandRotated,
                                  RandZoomd)

    spatial = (IMAGE, ATTENTION, LABEL)
    modes = ("bilinear", "bilinear", "nearest")
    angle = math.radians(30.0)
    return Compose([
        RandRotated(spatial, range_x=angle, range_y=angle, range_z=angle, prob=0.2, mode=modes,
                    padding_mode=("border", "zeros", "zeros")),
        RandZoomd(spatial, prob=0.2, min_zoom=0.7, max_zoom=1.4, mode=("trilinear", "trilinear", "nearest"),
                  padding_mode=("edge", "constant", "constant")),
        Rand3DElasticd(spatial, sigma_range=(9.0, 13.0), magnitude_range=(0.0, 900.0), prob=0.2, mode=modes,
                       padding_mode=("border", "zeros", "zeros")),
        RandAdjustContrastd(IMAGE, prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
        RandAdjustContrastd(IMAGE, prob=0.1, gamma=(0.7, 1.5), invert_image=True, retain_stats=True),
        *(RandFlipd(spatial, prob=0.5, spatial_axis=axis) for axis in range(3)),
    ])


def augment_batch(transform, x: np.ndarray, attention: np.ndarray, label: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment each patch of a batch (x [B,C,*P], attention [B,1,*P], label [B,1,*P]); shapes and dtypes kept."""
    transform.set_random_state(seed=int(rng.integers(2 ** 31 - 1)))
    xs, atts, ys = [], [], []
    for b in range(len(x)):
        out = transform({IMAGE: x[b], ATTENTION: attention[b], LABEL: label[b].astype(np.float32)})
        xs.append(np.asarray(out[IMAGE], np.float32))
        atts.append(np.clip(np.asarray(out[ATTENTION], np.float32), 0.0, 1.0))
        ys.append(np.rint(np.asarray(out[LABEL])).astype(label.dtype))
    return np.stack(xs), np.stack(atts), np.stack(ys)
