"""Texture Encoding Layer (Deep TEN, Zhang et al. CVPR 2017), used by paper 2 (eq. 6) beside global pooling.

The H*W feature vectors x_i of a map are described by their soft-assigned residuals to K learnable codewords c_k:
    a_ik = softmax_k(-s_k * ||x_i - c_k||^2)      (s_k: learnable smoothing factor of codeword k)
    e_k  = sum_i a_ik (x_i - c_k)
The K residual encodings are concatenated and L2-normalised: an orderless, spatially invariant description of
the feature distribution (texture), whatever the map's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualEncoding(nn.Module):
    """The encoding itself: (B, D, H, W) -> (B, K, D)."""

    def __init__(self, dim: int, n_codewords: int):
        super().__init__()
        self.dim, self.n_codewords = dim, n_codewords
        bound = 1.0 / (n_codewords * dim) ** 0.5
        self.codewords = nn.Parameter(torch.empty(n_codewords, dim).uniform_(-bound, bound))
        self.smoothing = nn.Parameter(torch.empty(n_codewords).uniform_(0.0, 1.0))

    def forward(self, features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``weights`` (B, 1, H, W) in [0, 1]: each position's share in the sums (the authors' masked encoding: the
        tumour mask at the feature map's grid); None: every position counts fully."""
        b, d = features.shape[:2]
        if d != self.dim:
            raise ValueError(f"ResidualEncoding expects {self.dim} channels, got {d}.")
        x = features.reshape(b, d, -1).transpose(1, 2)  # (B, N, D)
        c = self.codewords  # (K, D)
        # ||x - c||^2 without materialising the (B, N, K, D) residuals
        distances = (x * x).sum(-1, keepdim=True) - 2 * x @ c.t() + (c * c).sum(-1)[None, None, :]  # (B, N, K)
        assign = torch.softmax(-self.smoothing[None, None, :] * distances, dim=-1)  # (B, N, K)
        if weights is not None:
            assign = assign * weights.reshape(b, -1, 1).to(assign.dtype)
        # e_k = sum_i a_ik x_i - (sum_i a_ik) c_k
        return assign.transpose(1, 2) @ x - assign.sum(1)[..., None] * c[None]  # (B, K, D)


class TextureEncodingLayer(nn.Module):
    """Deep TEN head: 1x1 conv to ``dim`` channels (BN, ReLU), residual encoding, flatten, L2 normalisation.

    Output size ``dim * n_codewords``.
    """

    def __init__(self, in_channels: int, dim: int = 128, n_codewords: int = 32):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
        self.encoding = ResidualEncoding(dim, n_codewords)
        self.out_features = dim * n_codewords

    def forward(self, features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        encoded = self.encoding(self.reduce(features), weights)
        return F.normalize(encoded.flatten(1), dim=1)
