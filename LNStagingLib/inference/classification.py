"""Stage-2 inference: the probability of every candidate of one case being a GTV_LN.

Design for speed: patches come out of ``iter_patch_batches`` in batches, the CNN (which works per candidate) runs
over whole batches under ``torch.inference_mode``, and the graph head runs once over all of the patient's f. The
per-candidate loop (``classify_candidates_naive``: one patch, one CNN call at a time) is kept as the reference that
tests and benchmarks/stage2_benchmark.py compare against.

Identical outputs. oneDNN (PyTorch's fast CPU convolution) picks different kernels for a batch of 1 and of B, so
by default the two paths agree to ~1e-6 in probability, not bit for bit. ``exact=True`` makes them bit-identical:
the CNN's FC layers are row-wise already (models/roi_cnn.RowwiseLinear) and the convolutions then run on PyTorch's
native kernels, whose per-candidate result does not depend on the batch, at ~10x the CPU time (measured in
benchmarks/stage2_benchmark.py).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from ..candidates.patches import CandidatePatches, extract_patches, iter_patch_batches, label_extents_mm
from ..errors import ModelError
from ..models.stage2 import Stage2Model
from ..progress import Progress


def _convolutions(exact: bool):
    """exact: convolutions whose per-candidate result does not depend on the batch (see the module docstring).

    Only the on/off switch is set: flags()' defaults would also switch oneDNN's TF32 on, which only Intel GPUs have,
    and torch warns about that at every run."""
    return torch.backends.mkldnn.flags(enabled=torch.backends.mkldnn.is_available() and not exact,
                                       deterministic=None, allow_tf32=None, fp32_precision=None)


def patch_arguments(model: Stage2Model, ct: sitk.Image, centroids_lps: np.ndarray, pet: Optional[sitk.Image],
                    label_map: Optional[sitk.Image], label_ids: Optional[Sequence[int]]) -> dict:
    """Keyword arguments for the patch extractor as the model's configuration requires them."""
    config = model.config
    if config.use_pet and pet is None:
        raise ModelError("This stage-2 model reads CT and PET: supply the PET image (or use a CT-only model).")
    kwargs = dict(pet=pet if config.use_pet else None, config=config.patch_config())
    if label_map is not None and label_ids is not None:
        if config.roi_source == "label":
            kwargs.update(label_map=label_map, label_ids=label_ids)
        else:  # sphere ROIs, but large nodes are still resized from their true extent
            kwargs["extents_mm"] = label_extents_mm(label_map, label_ids, np.asarray(centroids_lps).reshape(-1, 3),
                                                    kwargs["config"])
    return kwargs


def prior_matrix(model: Stage2Model, ct: sitk.Image, centroids_lps: np.ndarray, priors=None,
                 tumor: Optional[sitk.Image] = None, lung: Optional[sitk.Image] = None) -> Optional[np.ndarray]:
    """The [N, P] raw priors in the model's column order, computed with priors.candidate_priors when not given.

    ``priors`` may be an array already in the model's order or a PriorTable-like object with ``names``/``values``.
    """
    names = model.config.prior_names
    if not model.config.use_priors:
        return None
    if priors is None:
        from ..priors.candidate_priors import candidate_priors

        priors = candidate_priors(ct, centroids_lps, tumor=tumor, lung=lung)
    if hasattr(priors, "names"):
        columns = list(priors.names)
        missing = [n for n in names if n not in columns]
        if missing:
            raise ModelError(f"The model needs spatial priors {', '.join(missing)}, which were not computed.")
        return np.asarray(priors.values, dtype=np.float64)[:, [columns.index(n) for n in names]]
    return np.asarray(priors, dtype=np.float64).reshape(len(np.atleast_2d(centroids_lps)), len(names))


@torch.inference_mode()
def classify_patches(model: Stage2Model, patches: CandidatePatches | Sequence[CandidatePatches],
                     priors: Optional[np.ndarray], device: str = "cpu", batch_size: int = 16,
                     exact: bool = False) -> np.ndarray:
    """Probabilities for ONE patient's candidates from their patches (one CandidatePatches or an iterable of batches)."""
    model.eval()
    with _convolutions(exact):
        return _classify_patches(model, patches, priors, device, batch_size)


def _classify_patches(model, patches, priors, device, batch_size) -> np.ndarray:
    logits_parts, f_parts = [], []
    batches = [patches] if isinstance(patches, CandidatePatches) else patches
    for batch in batches:
        for start in range(0, len(batch), batch_size):
            images = torch.from_numpy(batch.images[start:start + batch_size]).to(device)
            masks = torch.from_numpy(batch.masks[start:start + batch_size]).to(device)
            logits, f = model.features(images, masks)
            logits_parts.append(logits)
            f_parts.append(f)
    if not f_parts:
        return np.zeros(0, dtype=np.float32)
    s = None if priors is None else torch.as_tensor(priors, dtype=torch.float32, device=device)
    out = model.head_logits(torch.cat(logits_parts), torch.cat(f_parts), s)
    return torch.sigmoid(out).float().cpu().numpy()


def classify_candidates(model: Stage2Model, ct: sitk.Image, centroids_lps, *, pet: Optional[sitk.Image] = None,
                        label_map: Optional[sitk.Image] = None, label_ids: Optional[Sequence[int]] = None,
                        priors=None, tumor: Optional[sitk.Image] = None, lung: Optional[sitk.Image] = None,
                        batch_size: int = 16, device: str = "cpu", exact: bool = False,
                        progress: Optional[Progress] = None) -> np.ndarray:
    """Probability per candidate (same order as ``centroids_lps`` [N, 3] LPS mm) for one case.

    label_map + label_ids: the candidates' instance masks (stage-1 GTV_LN labels), for ROI masks and resizing.
    priors: raw spatial priors (array in the model's order, or a PriorTable); computed from ``tumor`` when absent.
    """
    progress = progress or Progress()
    centroids = np.asarray(centroids_lps, dtype=np.float64).reshape(-1, 3)
    if len(centroids) == 0:
        return np.zeros(0, dtype=np.float32)
    s = prior_matrix(model, ct, centroids, priors, tumor, lung)
    kwargs = patch_arguments(model, ct, centroids, pet, label_map, label_ids)
    batches = iter_patch_batches(ct, centroids, batch_size=batch_size, progress=progress.sub(0.0, 0.9), **kwargs)
    probabilities = classify_patches(model, batches, s, device=device, batch_size=batch_size, exact=exact)
    progress.step(1.0, f"classified {len(centroids)} candidates")
    return probabilities


@torch.inference_mode()
def classify_candidates_naive(model: Stage2Model, ct: sitk.Image, centroids_lps, *, pet=None, label_map=None,
                              label_ids=None, priors=None, tumor=None, lung=None, device: str = "cpu",
                              exact: bool = False) -> np.ndarray:
    """Reference path: one candidate at a time (patch, CNN), then the head. Same result as classify_candidates."""
    model.eval()
    centroids = np.asarray(centroids_lps, dtype=np.float64).reshape(-1, 3)
    s = prior_matrix(model, ct, centroids, priors, tumor, lung)
    with _convolutions(exact):
        return _naive(model, ct, centroids, s, pet, label_map, label_ids, device)


def _naive(model, ct, centroids, s, pet, label_map, label_ids, device) -> np.ndarray:
    logits, features = [], []
    for i, centre in enumerate(centroids):
        ids = None if label_ids is None else [label_ids[i]]
        patch = extract_patches(ct, centre[None], **patch_arguments(model, ct, centre[None], pet, label_map, ids))
        logit, f = model.features(torch.from_numpy(patch.images).to(device), torch.from_numpy(patch.masks).to(device))
        logits.append(logit)
        features.append(f)
    prior_tensor = None if s is None else torch.as_tensor(s, dtype=torch.float32, device=device)
    out = model.head_logits(torch.cat(logits), torch.cat(features), prior_tensor)
    return torch.sigmoid(out).float().cpu().numpy()
