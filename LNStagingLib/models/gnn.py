"""Graph heads over a patient's candidates (paper 1, sec. 2.3), parts named as in eq. 2-7.

    s' = T(s),  x = (f || s')                      eq. 2   (T: MLP, 640-d in the paper; x = f without priors)
    h  = phi_h(f)                                   eq. 3   (1024 -> 256)
    GNNb: m_u = sum_v alpha_uv phi_e(x_v)           eq. 4   (alpha learned, GAT: torch_geometric GATConv)
    GNNp: m_u = sum_v phi_e(G(x_u, x_v))            eq. 6   (G = concatenation, 2 x 1664 = 3328; phi_e: 3328 -> 256)
    h'_u = phi_u(h_u, m_u)                          eq. 5
    y_u  = phi_y(h'_u)                              eq. 7   (a logit here; sigmoid gives the probability)

The graph is the fully connected graph with self loops over one patient's candidates, so N(u) is every node.
GNNp is computed densely: phi_e's first layer applied to G(x_u, x_v) = [x_u || x_v] equals W_u x_u + W_v x_v, so
the N^2 pair messages never materialise 3328-d vectors (same numbers, O(N^2 x 256) memory instead of O(N^2 x 3328)).
Aggregation is the sum of eq. 6 ("sum") or its mean ("mean": the same up to 1/N, steadier when patients have very
different numbers of candidates).

Review-state variant (``review_state=True``, issue 19): each node's x also carries its review state as an explicit
3-way indicator r = (accepted, rejected, unknown), x = (f || T(s) || r). Trained with a random subset of each
patient's labels revealed through r (loss on the hidden ones), the pair messages carry a reviewer's decisions to the
other candidates, so accepting or rejecting a node re-scores the rest (inference/rescore.py). r = unknown for every
node is the ordinary prediction. Off by default: checkpoints without the field load as before.

Decision channel (``decision_channel=True``, with the review state): the pair messages above learnt to ignore r on
phantom cohorts of 36 training patients (a decision is 3 of ~1100 input numbers, averaged over ~35 pairs), although
a 13-weight regression on explicit pair features shows the decisions carry signal (docs/RESULTS.md). So decided
nodes also send a second message built from those features only: for u and each decided v,
    d_uv = (cos(f_u, f_v), exp(-|p_u - p_v|), accepted_v, rejected_v, cos(f_u, f_v) (accepted_v - rejected_v))
with p the position priors (x_norm, y_norm, z_norm, standardised); m'_u = mean over decided v of phi_d(d_uv), 0
when nothing is decided, and h'_u = phi_u(h_u, m_u, m'_u). "Looks like / lies near a node the reviewer accepted
(rejected)" is then a few weights to learn instead of a product hidden in 1100-d pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass
class GNNConfig:
    f_dim: int = 1024
    prior_dim: int = 6
    use_priors: bool = True
    t_dim: int = 640
    h_dim: int = 256
    msg_dim: int = 256
    aggregation: str = "sum"  # "sum" (eq. 6) | "mean"
    gat_heads: int = 4
    review_state: bool = False  # x also carries the review-state indicator r (GNNp only)
    decision_channel: bool = False  # decided nodes also send the explicit-feature message m' (needs review_state)

    @property
    def x_dim(self) -> int:
        return self.f_dim + (self.t_dim if self.use_priors else 0) + (len(REVIEW_CHANNELS) if self.review_state else 0)


# The review-state indicator r: one channel each, exactly one set per node.
REVIEW_CHANNELS = ("accepted", "rejected", "unknown")
UNKNOWN, ACCEPTED, REJECTED = -1, 1, 0


def review_indicator(states: torch.Tensor) -> torch.Tensor:
    """states [N] (1 accepted, 0 rejected, -1 unknown) -> r [N, 3] one-hot over REVIEW_CHANNELS."""
    states = states.long()
    r = torch.zeros(states.shape[0], len(REVIEW_CHANNELS), device=states.device)
    r[states == ACCEPTED, 0] = 1.0
    r[states == REJECTED, 1] = 1.0
    r[states == UNKNOWN, 2] = 1.0
    if bool((r.sum(dim=1) != 1).any()):
        raise ValueError("review states must be 1 (accepted), 0 (rejected) or -1 (unknown)")
    return r


# The features of the decision channel's message from a decided node v to a node u.
DECISION_FEATURES = ("similarity", "nearness", "accepted", "rejected", "signed similarity")
POSITION_PRIORS = ("x_norm", "y_norm", "z_norm")  # the first priors of s: where a candidate is


def decision_features(f: torch.Tensor, positions: Optional[torch.Tensor], review: torch.Tensor) -> torch.Tensor:
    """[N, D, len(DECISION_FEATURES)] for every node u and each of the D decided nodes v (review >= 0).
    ``positions`` [N, 3] (standardised position priors) or None (nearness 0)."""
    decided = review >= 0
    unit = f / (f.norm(dim=1, keepdim=True) + 1e-6)
    similarity = unit @ unit[decided].T
    nearness = (torch.exp(-torch.cdist(positions, positions[decided])) if positions is not None
                else torch.zeros_like(similarity))
    accepted = (review[decided] == ACCEPTED).to(f.dtype).expand_as(similarity)
    rejected = (review[decided] == REJECTED).to(f.dtype).expand_as(similarity)
    return torch.stack([similarity, nearness, accepted, rejected, similarity * (accepted - rejected)], dim=-1)


GNN_PRESETS = {
    "paper": dict(t_dim=640, h_dim=256, msg_dim=256, aggregation="sum", gat_heads=4),
    "small": dict(t_dim=80, h_dim=32, msg_dim=32, aggregation="mean", gat_heads=4),
    "tiny": dict(t_dim=16, h_dim=8, msg_dim=8, aggregation="mean", gat_heads=2),
}


def mlp(din: int, dout: int, hidden: Optional[int] = None) -> nn.Sequential:
    """Linear + ReLU, optionally with a hidden layer."""
    if hidden is None:
        return nn.Sequential(nn.Linear(din, dout), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Linear(din, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dout), nn.ReLU(inplace=True))


def G(x_u: torch.Tensor, x_v: torch.Tensor) -> torch.Tensor:
    """The pair fusion of eq. 6: concatenation of target and source representations (its learning is in phi_e)."""
    return torch.cat([x_u, x_v], dim=-1)


class NodeRepresentation(nn.Module):
    """Eq. 2 and 3: x = (f || T(s)) and h = phi_h(f)."""

    def __init__(self, config: GNNConfig):
        super().__init__()
        self.config = config
        self.T = mlp(config.prior_dim, config.t_dim, hidden=config.t_dim) if config.use_priors else None
        self.phi_h = mlp(config.f_dim, config.h_dim)

    def forward(self, f: torch.Tensor, s: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.T is None:
            x = f
        else:
            if s is None:
                raise ValueError("this head was built with spatial priors; pass s")
            x = torch.cat([f, self.T(s)], dim=1)
        return x, self.phi_h(f)


class PairMessage(nn.Module):
    """phi_e(G(x_u, x_v)) for all pairs at once: a 2-layer MLP whose first layer is split over u and v."""

    def __init__(self, x_dim: int, msg_dim: int):
        super().__init__()
        self.x_dim = x_dim
        self.first = nn.Linear(2 * x_dim, msg_dim)  # acts on G(x_u, x_v): 3328 -> 256 in the paper configuration
        self.second = nn.Linear(msg_dim, msg_dim)

    def forward_pair(self, g: torch.Tensor) -> torch.Tensor:
        """phi_e of explicit fused pairs g = G(x_u, x_v) [..., 2 * x_dim] (reference path, used by tests)."""
        return torch.relu(self.second(torch.relu(self.first(g))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, x_dim] -> [N, N, msg_dim]: entry (u, v) is phi_e(G(x_u, x_v))."""
        w_u, w_v = self.first.weight[:, : self.x_dim], self.first.weight[:, self.x_dim:]
        pre = (x @ w_u.T)[:, None, :] + (x @ w_v.T)[None, :, :] + self.first.bias
        return torch.relu(self.second(torch.relu(pre)))


class GNNp(nn.Module):
    """The proposed GNN: messages from fused node pairs (eq. 6), update (eq. 5), output (eq. 7)."""

    def __init__(self, config: GNNConfig):
        super().__init__()
        self.config = config
        self.nodes = NodeRepresentation(config)
        self.phi_e = PairMessage(config.x_dim, config.msg_dim)
        if config.decision_channel and not config.review_state:
            raise ValueError("the decision channel needs the review-state input (review_state=True)")
        self.phi_d = (mlp(len(DECISION_FEATURES), config.msg_dim, hidden=config.msg_dim) if config.decision_channel
                      else None)
        self.phi_u = mlp(config.h_dim + config.msg_dim * (2 if config.decision_channel else 1), config.h_dim)
        self.phi_y = nn.Linear(config.h_dim, 1)

    def decision_messages(self, f: torch.Tensor, s: Optional[torch.Tensor], review: torch.Tensor) -> torch.Tensor:
        """m'_u: the mean of phi_d over the decided nodes' explicit features; 0 when nothing is decided."""
        if not bool((review >= 0).any()):
            return f.new_zeros(f.shape[0], self.config.msg_dim)
        positions = s[:, :len(POSITION_PRIORS)].to(f.dtype) if s is not None else None
        return self.phi_d(decision_features(f, positions, review)).mean(dim=1)

    def messages(self, x: torch.Tensor) -> torch.Tensor:
        """m_u = sum (or mean) over v in N(u) = all nodes (incl. u) of phi_e(G(x_u, x_v))."""
        pair = self.phi_e(x)
        return pair.mean(dim=1) if self.config.aggregation == "mean" else pair.sum(dim=1)

    def forward(self, f: torch.Tensor, s: Optional[torch.Tensor] = None,
                review: Optional[torch.Tensor] = None) -> torch.Tensor:
        """f [N, f_dim], s [N, prior_dim] of ONE patient -> logits [N]. ``review`` [N] (1 accepted, 0 rejected,
        -1 unknown) is read by the review-state variant only; None = every node unknown."""
        x, h = self.nodes(f, s)
        if self.config.review_state:
            if review is None:
                review = torch.full((f.shape[0],), UNKNOWN, device=f.device)
            x = torch.cat([x, review_indicator(review).to(x.dtype)], dim=1)
        elif review is not None:
            raise ValueError("this head was trained without the review state; pass review=None")
        m = self.messages(x)
        if self.phi_d is not None:
            m = torch.cat([m, self.decision_messages(f, s, review)], dim=1)
        h_new = self.phi_u(torch.cat([h, m], dim=1))
        return self.phi_y(h_new).squeeze(1)


def complete_graph(n: int, device=None) -> torch.Tensor:
    """edge_index [2, n^2] of the fully connected graph with self loops (source row 0, target row 1)."""
    idx = torch.arange(n, device=device)
    return torch.stack([idx.repeat_interleave(n), idx.repeat(n)])


class GNNb(nn.Module):
    """The baseline GNN: messages weighted by learned attention alpha_uv (eq. 4, GAT [20])."""

    def __init__(self, config: GNNConfig):
        super().__init__()
        from torch_geometric.nn import GATConv

        if config.msg_dim % config.gat_heads:
            raise ValueError("msg_dim must be a multiple of gat_heads")
        self.config = config
        self.nodes = NodeRepresentation(config)
        # alpha_uv * phi_e(x_v) with phi_e linear; heads concatenated to msg_dim. Self loops are in the graph.
        self.phi_e = GATConv(config.x_dim, config.msg_dim // config.gat_heads, heads=config.gat_heads,
                             concat=True, add_self_loops=False)
        self.phi_u = mlp(config.h_dim + config.msg_dim, config.h_dim)
        self.phi_y = nn.Linear(config.h_dim, 1)

    def forward(self, f: torch.Tensor, s: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, h = self.nodes(f, s)
        m = self.phi_e(x, complete_graph(x.shape[0], x.device))
        h_new = self.phi_u(torch.cat([h, m], dim=1))
        return self.phi_y(h_new).squeeze(1)


class InstanceHead(nn.Module):
    """No graph: each candidate on its own from x = (f || T(s)) (the "CNN + spatial prior" rows of Table 1)."""

    def __init__(self, config: GNNConfig):
        super().__init__()
        self.config = config
        self.nodes = NodeRepresentation(config)
        self.phi_x = mlp(config.x_dim, config.h_dim)
        self.phi_y = nn.Linear(config.h_dim, 1)

    def forward(self, f: torch.Tensor, s: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, _ = self.nodes(f, s)
        return self.phi_y(self.phi_x(x)).squeeze(1)
