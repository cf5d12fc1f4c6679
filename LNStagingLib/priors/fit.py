"""Estimate d_min / d_max per structure from a labelled cohort, the way paper 2 built Table II.

"Parameters of the mapping function are determined by grouping GT LN voxels according to which organ/vessel is
closest to, and calculating the minimum and maximum distances to organ/vessel boundaries in each group."
Closest = smallest signed distance (inside a structure wins). With `percentile` p > 0 the p-th and (100-p)-th
percentiles replace min and max, so a few mislabelled voxels do not stretch the range. Structures that no node
voxel is closest to keep the default (Table II) values, and the profile's "fit" record says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..anatomy.structures import STRUCTURE_KEYS, STRUCTURES, OrganLabels, map_structures
from ..errors import DatasetError
from ..progress import Progress
from .attention import signed_distance_mm
from .profile import AttentionProfile, StructureParams, default_profile


def node_distances(structures: sitk.Image, nodes: sitk.Image) -> np.ndarray:
    """(n_node_voxels, 10) signed distance (mm) of every node voxel to every structure (inf if absent)."""
    labels = sitk.GetArrayViewFromImage(structures)
    node_voxels = np.nonzero(sitk.GetArrayViewFromImage(nodes) != 0)
    out = np.full((node_voxels[0].size, len(STRUCTURES)), np.inf, np.float32)
    for structure in STRUCTURES:
        if node_voxels[0].size and np.any(labels == structure.index):
            distance = sitk.GetArrayFromImage(signed_distance_mm(sitk.Equal(structures, structure.index)))
            out[:, structure.index - 1] = distance[node_voxels]
    return out


def fit_from_distances(distances: np.ndarray, percentile: float = 0.0, name: str = "fitted",
                       fallback: AttentionProfile | None = None, round_to: float = 0.5) -> AttentionProfile:
    """Group node voxels by their closest structure; (min, max) or percentiles of each group's distance."""
    fallback = fallback or default_profile()
    if not 0.0 <= percentile < 50.0:
        raise ValueError("percentile must be in [0, 50)")
    finite = np.isfinite(distances).any(axis=1)
    distances = distances[finite]
    closest = np.argmin(distances, axis=1) if len(distances) else np.zeros(0, int)
    params, record = {}, {"percentile": percentile, "node_voxels": int(len(distances)), "per_structure": {}}
    for structure in STRUCTURES:
        group = distances[closest == structure.index - 1, structure.index - 1]
        if group.size == 0:
            params[structure.key] = fallback.params(structure.key)
            record["per_structure"][structure.key] = {"voxels": 0, "source": f"default ({fallback.name})"}
            continue
        low, high = (np.percentile(group, [percentile, 100.0 - percentile]) if percentile
                     else (group.min(), group.max()))
        low = float(np.floor(low / round_to) * round_to)
        high = float(np.ceil(high / round_to) * round_to)
        params[structure.key] = StructureParams(low, max(high, low), fallback.params(structure.key).border)
        record["per_structure"][structure.key] = {"voxels": int(group.size), "source": "fitted"}
    return AttentionProfile(name, params, f"fitted from {record['node_voxels']} lymph-node voxels", record)


def fit_profile(data_dir: str | Path, percentile: float = 0.0, use_all_nodes: bool = True,
                case_ids: list[str] | None = None, progress: Progress | None = None) -> AttentionProfile:
    """Fit a profile on a cohort folder (docs/DATASET.md). Nodes: lymph_nodes.nii.gz when a case has it and
    `use_all_nodes`, else gtv_ln.nii.gz. By default all non-test cases (held-out test cases are not looked at)."""
    from ..dataset.format import read_dataset

    progress = progress or Progress()
    dataset = read_dataset(data_dir)
    ids = case_ids if case_ids is not None else dataset.trainval_ids
    if not ids:
        raise DatasetError("No cases to fit on (all are held out as test cases).")
    names = {int(k): v for k, v in dataset.organ_labels.items()}
    chunks = []
    for done, case_id in enumerate(ids):
        progress.step(done / len(ids), f"fitting: case {done + 1}/{len(ids)}")
        case = dataset.case(case_id)
        organs = case.load("organs")
        structures = map_structures(OrganLabels(organs, names), dataset.organ_mapping).image
        key = "lymph_nodes" if use_all_nodes and case.has("lymph_nodes") else "gtv_ln"
        chunks.append(node_distances(structures, case.load(key)))
    progress.step(1.0, "fit done")
    distances = np.concatenate(chunks) if chunks else np.zeros((0, len(STRUCTURE_KEYS)), np.float32)
    if not len(distances):
        raise DatasetError("The cohort has no lymph-node voxels; the profile cannot be fitted.")
    profile = fit_from_distances(distances, percentile, name=f"fitted_{dataset.name}")
    profile.fit["dataset"] = dataset.name
    profile.fit["cases"] = len(ids)
    return profile
