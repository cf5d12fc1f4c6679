"""A cohort case as network inputs: the loaders training and evaluation share (so evaluation sees what training saw).

- stage 1: the attention map of a case from its organ label map (``case_attention``);
- stage 2: candidate patches, labels and spatial priors (``load_case_candidates``, cached per case);
- stage 3: the patient model's patches and largest positive LN volume (``load_examples``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import AnatomyError, DatasetError


def case_attention(dataset, case_files, ct):
    """Attention map (paper 2, eq. 1-2) of a case from its organ label map, on the CT grid."""
    from ..anatomy.structures import OrganLabels, map_structures
    from ..io.resample import require_same_grid
    from ..priors.attention import attention_map

    organs = case_files.load("organs")
    require_same_grid(organs, ct, f"organ label map of case {case_files.case_id}")
    structures = map_structures(OrganLabels(organs, dict(dataset.organ_labels)), dataset.organ_mapping)
    return attention_map(structures.image)



@dataclass
class CaseCandidates:
    """One case's candidates as network inputs (images float16 in the cache, float32 when used)."""

    case_id: str
    images: np.ndarray  # [N, C, S, S, S] (C = 2 when the case has PET)
    masks: np.ndarray  # [N, 1, S, S, S] uint8
    scales: np.ndarray  # [N]
    labels: np.ndarray  # [N] 0/1
    node_ids: np.ndarray  # [N]
    priors: np.ndarray  # [N, P] raw, NaN where missing
    prior_names: tuple[str, ...]
    n_lesions: int  # GTV_LN instances in gtv_ln (lesions no candidate hit count as misses)
    has_mask: np.ndarray | None = None  # [N] bool: ROI-GAP pools over the candidate's own mask (else a sphere)


def _file_key(case_files) -> str:
    parts = []
    for key in ("ct", "pet", "organs", "tumor", "gtv_ln", "lymph_nodes", "candidates"):
        path = case_files.path(key)
        if path.exists():
            stat = path.stat()
            parts.append(f"{key}:{stat.st_size}:{int(stat.st_mtime)}")
    return ";".join(parts)


def load_case_candidates(dataset, case_id: str, config, cache_dir: Optional[Path] = None) -> CaseCandidates:
    """Patches, labels and priors of one case, read from the cache when the case files are unchanged."""
    from ..candidates.patches import extract_patches, label_extents_mm

    case = dataset.case(case_id)
    patch_config = config.patch_config()
    key = hashlib.sha256(f"{_file_key(case)}|{dataclasses.asdict(patch_config)}|{config.roi_source}|v2".encode()
                         ).hexdigest()
    cached = None if cache_dir is None else Path(cache_dir) / f"{case_id}-{key[:16]}.npz"
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            return CaseCandidates(case_id, z["images"], z["masks"], z["scales"], z["labels"], z["node_ids"],
                                  z["priors"], tuple(str(n) for n in z["prior_names"]), int(z["n_lesions"]),
                                  z["has_mask"].astype(bool))
    rows = case.candidates()
    if not rows:
        raise DatasetError(f"Case {case_id}: candidates.csv has no rows; stage 2 needs candidates to classify.")
    centres = np.array([[r["x"], r["y"], r["z"]] for r in rows], dtype=np.float64)
    labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    node_ids = np.array([int(r["node_id"]) for r in rows], dtype=np.int64)
    ct = case.load("ct")
    pet = case.load("pet") if case.has("pet") else None
    gtv = case.load("gtv_ln")
    nodes = case.load("lymph_nodes") if case.has("lymph_nodes") else gtv
    mask_ids = np.where((node_ids > 0) & ((labels == 1) | case.has("lymph_nodes")), node_ids, 0)
    kwargs = dict(pet=pet, config=patch_config)
    has_mask = (mask_ids > 0) if config.roi_source == "label" else np.zeros(len(rows), bool)
    if config.roi_source == "label":
        kwargs.update(label_map=nodes, label_ids=mask_ids)
    else:
        kwargs["extents_mm"] = label_extents_mm(nodes, mask_ids, centres, patch_config)
    patches = extract_patches(ct, centres, **kwargs)
    priors, names = _case_priors(dataset, case, ct, centres)
    import SimpleITK as sitk

    n_lesions = len([v for v in np.unique(sitk.GetArrayViewFromImage(gtv)) if v != 0])
    out = CaseCandidates(case_id, patches.images.astype(np.float16), patches.masks.astype(np.uint8), patches.scales,
                         labels, node_ids, priors, names, n_lesions, has_mask)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.stem + ".partial.npz")
        np.savez(tmp, images=out.images, masks=out.masks, scales=out.scales, labels=labels, node_ids=node_ids,
                 priors=priors, prior_names=np.array(names), n_lesions=n_lesions, has_mask=has_mask)
        tmp.replace(cached)
    return out


def _case_priors(dataset, case, ct, centres) -> tuple[np.ndarray, tuple[str, ...]]:
    from ..anatomy.landmarks import landmark_values
    from ..anatomy.structures import OrganLabels
    from ..priors.candidate_priors import PRIOR_NAMES, candidate_priors

    tumor = case.load("tumor") if case.has("tumor") else None
    organs = case.load("organs") if case.has("organs") else None
    values = None if organs is None else landmark_values(OrganLabels(organs, dict(dataset.organ_labels)),
                                                         dataset.organ_mapping)
    try:
        table = candidate_priors(ct, centres, tumor=tumor, organs=organs, organ_values=values)
    except AnatomyError:  # e.g. no lungs in the field of view: every prior is missing, the model sees the mean
        return np.full((len(centres), len(PRIOR_NAMES)), np.nan), tuple(PRIOR_NAMES)
    return np.asarray(table.values, dtype=np.float64), tuple(table.names)


def case_lesions(case: CaseCandidates) -> int:
    """GTV_LN lesions of a case: its gtv_ln instances, at least the distinct positive nodes among the candidates."""
    hit_nodes = {int(n) for n, label in zip(case.node_ids, case.labels) if label and n}
    unnamed = int(np.sum((case.labels == 1) & (case.node_ids == 0)))
    return max(case.n_lesions, len(hit_nodes) + unnamed)



@dataclass
class PatientExample:
    case_id: str
    label: int
    ln_volume_mm3: float
    inputs: dict  # image (9,1,S,S), mask (9,1,S,S), ln_volume_mm3 (9,) tensors



def load_example(dataset, case_id: str, config, ln_volume_mm3: float | None = None) -> PatientExample:
    """One patient's patches and label; the LN volume from gtv_ln.nii.gz unless given."""
    from ..models.patient import largest_node_volume_mm3, patient_inputs

    files = dataset.case(case_id)
    ct, tumor = files.load("ct"), files.load("tumor")
    if ln_volume_mm3 is None:
        ln_volume_mm3 = largest_node_volume_mm3(files.load("gtv_ln")) if config.use_ln_volume else 0.0
    try:
        inputs = patient_inputs(ct, tumor, config, ln_volume_mm3)
    except AnatomyError as error:  # name the case the problem is in
        raise DatasetError(f"Case {case_id}: {error}") from error
    return PatientExample(case_id, files.metastasis, float(ln_volume_mm3), inputs)


def load_examples(dataset, case_ids, config, progress=None, ln_volumes: dict | None = None) -> list[PatientExample]:
    examples = []
    for i, case_id in enumerate(case_ids):
        if progress is not None:
            progress.step(i / max(len(case_ids), 1), f"case {i + 1}/{len(case_ids)}")
        volume = None if ln_volumes is None else ln_volumes.get(case_id)
        if ln_volumes is not None and volume is None and config.use_ln_volume:
            raise DatasetError(f"No LN volume given for case {case_id}; add it to the volumes file.")
        examples.append(load_example(dataset, case_id, config, volume))
    return examples


def predict_examples(model, examples: list[PatientExample], device: str = "cpu") -> np.ndarray:
    """Patient probabilities (mean of the patch probabilities)."""
    from ..models.patient import predict_patient

    return np.array([predict_patient(model, {k: v.to(device) for k, v in e.inputs.items()}) for e in examples])
