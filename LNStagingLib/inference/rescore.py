"""Re-score the pending candidates from a reviewer's decisions (issue 19), for every face (web review, Slicer).

A stage-2 GNNp trained with ``--reveal-labels`` (models/gnn.py, review_state) reads each node's review state as
input. Accepting a node (metastatic) or rejecting one is relational evidence: the pair messages carry it to the
other candidates of the patient, whose probabilities then move.

Speed: the CNN runs once per case (``ReviewGraph.from_results``: patches -> f and the CNN logit per candidate);
each decision then runs the graph head only, a few milliseconds for tens of candidates.

Rules: a decided node (accepted/rejected) never changes: it keeps the probability it had before re-scoring.
The decisions' effect is the review-state model's change of logit, decisions fed in minus nothing fed in, added to
each pending candidate's original logit (the run's stage-2 probability). When the run used this same model, as it
should, that is exactly the model's probability given the decisions; with another run model it carries only what
the decisions changed, and nothing decided always gives back the original probabilities. ``Rescored`` says which probabilities
moved, by how much, and from which decisions, so the review state and the report can record it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import ModelError
from .rescore_record import original_probability, rescore_summary, restore_original_probabilities

if TYPE_CHECKING:
    import torch

    from ..models.stage2 import Stage2Model

# torch, the models and the patch code are imported when re-scoring runs, not with this module: the Slicer panel
# imports it before PyTorch is installed, and a broken PyTorch must not break loading a review (issue 27).


def _torch():
    """PyTorch, or one ModelError saying why re-scoring cannot run (missing, or failing to load its libraries)."""
    try:
        import torch
    except (ImportError, OSError) as error:
        raise ModelError(f"PyTorch cannot be loaded ({type(error).__name__}: {error}): re-scoring needs it; install "
                         "or repair it (in Slicer: the PyTorch module), or choose no re-scoring model.") from None
    return torch


def state_codes() -> dict[str, int]:
    """Review state -> the code the review-state network reads (models.gnn: accepted 1, rejected 0, unknown -1)."""
    _torch()
    from ..models.gnn import ACCEPTED, REJECTED, UNKNOWN

    return {"accepted": ACCEPTED, "rejected": REJECTED, "pending": UNKNOWN}


def require_review_state(model) -> None:
    if not getattr(getattr(model, "config", None), "review_state", False):
        raise ModelError("This model cannot re-score from review decisions: it was trained without the review "
                         "state (lnstaging train cls --head gnnp --reveal-labels).")


@dataclass
class ReviewGraph:
    """One case's stage-2 head inputs, computed once: the graph head re-runs on them for every decision."""

    model: "Stage2Model"
    candidate_ids: list[int]
    cnn_logits: "torch.Tensor"  # [N]
    features: "torch.Tensor"  # [N, f_dim]
    priors: "Optional[torch.Tensor]"  # [N, P] raw, in the model's prior order (NaN where missing)

    def __post_init__(self) -> None:
        require_review_state(self.model)

    @classmethod
    def from_results(cls, model: "Stage2Model", results, ct: sitk.Image, pet: Optional[sitk.Image] = None,
                     batch_size: int = 16, device: str = "cpu") -> "ReviewGraph":
        """Run the CNN over the candidates of ``results`` (instance masks from results.gtv_ln when present)."""
        torch = _torch()
        with torch.inference_mode():
            return cls._from_results(torch, model, results, ct, pet, batch_size, device)

    @classmethod
    def _from_results(cls, torch, model, results, ct, pet, batch_size, device) -> "ReviewGraph":
        from ..candidates.patches import iter_patch_batches
        from .classification import _convolutions, patch_arguments

        require_review_state(model)  # before the CNN pass, not after it
        model.eval()
        ids = [c.id for c in results.candidates]
        if not ids:  # nothing to re-score yet (a user may add candidates later: the graph is then rebuilt)
            return cls(model, [], torch.zeros(0, device=device), torch.zeros(0, 0, device=device), None)
        centroids = np.array([c.centroid_lps for c in results.candidates], np.float64).reshape(-1, 3)
        label_map = results.gtv_ln
        kwargs = patch_arguments(model, ct, centroids, pet, label_map, ids if label_map is not None else None)
        logits, features = [], []
        with _convolutions(False):
            for batch in iter_patch_batches(ct, centroids, batch_size=batch_size, **kwargs):
                cnn_logits, f = model.features(torch.from_numpy(batch.images).to(device),
                                               torch.from_numpy(batch.masks).to(device))
                logits.append(cnn_logits)
                features.append(f)
        priors = None
        if model.config.use_priors:
            names = model.config.prior_names
            priors = torch.tensor([[c.priors.get(n, float("nan")) for n in names] for c in results.candidates],
                                  dtype=torch.float32, device=device).reshape(len(ids), len(names))
        return cls(model, ids, torch.cat(logits), torch.cat(features), priors)

    def matches(self, results) -> bool:
        """Whether ``results`` holds exactly the candidates this graph was computed for (in any order)."""
        ids = [c.id for c in results.candidates]
        return len(ids) == len(self.candidate_ids) and set(ids) == set(self.candidate_ids)

    def probabilities(self, states: Sequence[int]) -> np.ndarray:
        """Probability per candidate (candidate_ids order) given review states (1 accepted, 0 rejected, -1 unknown)."""
        torch = _torch()
        with torch.inference_mode():
            review = torch.as_tensor(np.asarray(states, dtype=np.int64), device=self.features.device)
            logits = self.model.head_logits(self.cnn_logits, self.features, self.priors, review)
            return torch.sigmoid(logits).float().cpu().numpy()


@dataclass
class Rescored:
    """The outcome of one re-scoring: probability per candidate id, what moved, and from which decisions."""

    probabilities: dict[int, float]
    original: dict[int, float]
    decisions: dict[int, str]  # candidate id -> accepted | rejected: the evidence used
    moved: dict[int, float] = field(default_factory=dict)  # pending id -> change (re-scored minus original)

    def as_dict(self) -> dict:
        return {"decisions": {str(k): v for k, v in sorted(self.decisions.items())},
                "probabilities": {str(k): round(v, 6) for k, v in sorted(self.probabilities.items())},
                "moved": {str(k): round(v, 6) for k, v in sorted(self.moved.items())}}


def rescore(results, decisions: Mapping[int, str], graph: ReviewGraph) -> Rescored:
    """Re-score the pending candidates of ``results`` given ``decisions`` (candidate id -> accepted | rejected).

    Decided candidates keep their original probability; the pending ones get the review-state model's
    probability with every decision fed in. ``graph`` holds the case's head inputs (ReviewGraph.from_results).
    """
    ids = list(graph.candidate_ids)  # the graph's order; results may list the same candidates in another
    if not graph.matches(results):
        raise ModelError("The re-scoring graph was computed for other candidates; rebuild it for these results.")
    codes = state_codes()
    decided = {int(k): v for k, v in decisions.items() if v != "pending"}
    unknown = [k for k, v in decided.items() if v not in codes or k not in ids]
    if unknown:
        raise ValueError(f"decisions must be accepted/rejected on candidates of these results: {unknown}")
    if not ids:
        return Rescored({}, {}, decided)
    states = [codes[decided.get(i, "pending")] for i in ids]
    with_decisions = graph.probabilities(states)
    without = graph.probabilities([codes["pending"]] * len(ids)) if decided else with_decisions
    original = {c.id: original_probability(c) for c in results.candidates}
    out, moved = {}, {}
    for i, p_dec, p_none in zip(ids, with_decisions, without):
        if i in decided:
            out[i] = original[i]
            continue
        if not decided:
            p = original[i]
        elif np.isnan(original[i]):
            p = float(p_dec)
        else:
            p = _sigmoid(_logit(original[i]) + _logit(p_dec) - _logit(p_none))
        out[i] = float(p)
        moved[i] = 0.0 if np.isnan(original[i]) else float(p) - original[i]
    return Rescored(out, original, decided, moved)


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return float(np.log(p) - np.log1p(-p))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


class Rescorer:
    """Re-scoring as a review applies it (web session and Slicer module alike), switchable on and off.

    ``apply(results)`` after every decision: with re-scoring on, each pending candidate's ``probability`` (what the
    table shows and the operating point thresholds) becomes the re-scored one and the decided ones keep their
    original; off, every candidate shows its original probability again. ``results.provenance["rescore"]`` records
    which probabilities were re-scored, by how much, from which decisions and with which model, so the saved review,
    the report and the export say so. ``stage2`` in ``scores`` always keeps the original.
    """

    def __init__(self, graph: ReviewGraph, model_name: str = "", model_sha256: str = "", enabled: bool = True):
        self.graph = graph
        self.model_name, self.model_sha256 = model_name, model_sha256
        self.enabled = enabled
        self.last: Optional[Rescored] = None
        self.seconds: Optional[float] = None

    def apply(self, results) -> Optional[Rescored]:
        import time

        start = time.perf_counter()
        for c in results.candidates:  # originals kept in scores, so switching off restores them exactly
            if "stage2" not in c.scores and c.probability is not None:
                c.scores["stage2"] = float(c.probability)
        if not self.enabled:
            restore_original_probabilities(results, self.model_name)
            self.last = None
        else:
            self.last = rescore(results, {c.id: c.review for c in results.candidates}, self.graph)
            for c in results.candidates:  # a decided candidate without any probability (user-added) keeps None
                p = self.last.probabilities[c.id]
                c.probability = None if np.isnan(p) else p
            results.provenance["rescore"] = {"enabled": True, "model": self.model_name,
                                             "model_sha256": self.model_sha256, **self.last.as_dict()}
            results.rank_candidates()
        self.seconds = time.perf_counter() - start
        return self.last


def rescorer_from_checkpoint(path, results, ct: sitk.Image, pet: Optional[sitk.Image] = None,
                             expected_sha256: Optional[str] = None, name: str = "", enabled: bool = True,
                             device: str = "cpu") -> Rescorer:
    """A Rescorer for ``results`` from a stage-2 checkpoint trained with --reveal-labels (sha256 checked when given).

    Runs the CNN over the candidates once (seconds); ModelError when the file is not such a model. Every face
    (web review session, Slicer module through the scene adapter) builds its rescorer here."""
    from pathlib import Path

    _torch()
    from ..models.checkpoint import load_model, sha256_of
    from ..models.stage2 import Stage2Model

    path = Path(path)
    model, _, _ = load_model(path, expected_sha256, map_location=device)
    if not isinstance(model, Stage2Model):
        raise ModelError(f"{path.name} is not a stage-2 (cls) model: re-scoring needs one trained with "
                         "lnstaging train cls --head gnnp --reveal-labels.")
    graph = ReviewGraph.from_results(model, results, ct, pet, device=device)
    return Rescorer(graph, name or path.name, expected_sha256 or sha256_of(path), enabled=enabled)


__all__ = ["ReviewGraph", "Rescored", "Rescorer", "rescore", "rescore_summary", "original_probability",
           "restore_original_probabilities", "rescorer_from_checkpoint", "state_codes"]
