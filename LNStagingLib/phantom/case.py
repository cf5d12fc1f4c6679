"""One synthetic PET/CT patient with ground truth: ``generate_case(seed, size=...)``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..progress import Progress
from .anatomy import TISSUE, TISSUES, TUMOR_CODES, build_anatomy
from .grid import Grid
from .lesions import (
    LOOK_ALIKES, POSITIVE_SUBTYPES, RELATIONS, Lesion, fit_to_room, make_look_alikes, make_room, node_appearance,
    outside_attention_bands, place_node_centres, spread_status, spread_tree,
)
from .render import lookup_tables, max_in_sphere, paint_anatomy, paint_lesion, synthesize_ct, synthesize_pet

# name -> (size (nx, ny, nz), spacing (mm), PET block factors)
SIZES = {
    "small": ((96, 96, 64), (1.5, 1.5, 2.5), (2, 2, 1)),
    "medium": ((160, 160, 96), (1.8, 1.8, 2.5), (2, 2, 1)),
    "benchmark": ((512, 512, 300), (0.9, 0.9, 1.5), (4, 4, 2)),
}
CENTRE = np.array([22.0, 12.0, 12.0])  # patient-frame point the field of view is centred on (peripancreatic region)
# An abdominal PET/CT field of view starts above the diaphragm: the liver dome (under the right hemidiaphragm) is
# imaged whole, so the z prior has a landmark besides the lung base (anatomy/landmarks.py).
DOME_MARGIN_MM = 10.0


@dataclass
class PhantomCase:
    """Images (SimpleITK, LPS) and ground truth of one phantom patient."""

    seed: int
    ct: sitk.Image
    pet: sitk.Image
    organs: sitk.Image
    tumor: sitk.Image
    gtv_ln: sitk.Image
    lymph_nodes: sitk.Image
    candidates: list[dict]
    metastasis: int
    info: dict = field(default_factory=dict)

    def images(self) -> dict[str, sitk.Image]:
        return {"ct": self.ct, "pet": self.pet, "organs": self.organs, "tumor": self.tumor, "gtv_ln": self.gtv_ln,
                "lymph_nodes": self.lymph_nodes}


def resolve_size(size, spacing=None):
    """(size, spacing, pet factors) for a size name, an (nx, ny, nz) tuple or an 'NXxNYxNZ' string."""
    if isinstance(size, str) and size in SIZES:
        shape, default_spacing, factors = SIZES[size]
    else:
        if isinstance(size, str):
            try:
                size = tuple(int(v) for v in size.lower().split("x"))
            except ValueError:
                raise ValueError(f"size must be small, medium, benchmark or NXxNYxNZ, not {size!r}") from None
        shape = tuple(int(v) for v in size)
        if len(shape) != 3 or min(shape) < 24:
            raise ValueError(f"size must have three dimensions of at least 24 voxels, not {size!r}")
        default_spacing = (1.5, 1.5, 2.5)
        factors = (2, 2, 1) if max(shape) <= 256 else (4, 4, 2)
    spacing = tuple(float(v) for v in (spacing or default_spacing))
    return shape, spacing, factors


def anatomy_scale(shape, spacing) -> float:
    """Shrink the anatomy so that a small field of view still holds every structure (1.0 = adult size)."""
    fov = np.asarray(shape, float) * np.asarray(spacing)
    return float(np.clip(min(fov[0] / 250.0, fov[1] / 250.0, fov[2] / 220.0), 0.5, 1.0))


def field_of_view(shape, spacing, centre, direction, liver) -> Grid:
    """The grid centred on ``centre``, raised along z just enough that the top of the ``liver`` ellipsoid lies at
    least DOME_MARGIN_MM below the most superior slice (a grid that already shows it so is left unchanged)."""
    grid = Grid.centred(shape, spacing, centre, direction)
    d = np.asarray(grid.direction).reshape(3, 3)
    if abs(d[2, 2]) < 0.5:  # not axial slices: no superior slice to keep the dome below
        return grid
    sign = np.sign(d[2, 2])  # +1 when the slice index k grows towards the head
    k_gradient = d[:, 2] / spacing[2]  # d k / d world point
    reach = float(np.linalg.norm(liver.semi * (liver.rotation.T @ k_gradient)))  # half the liver's extent in k
    k_centre = float(grid.to_index(liver.centre)[2])
    superior_slice = shape[2] - 1 if sign > 0 else 0
    room = sign * (superior_slice - k_centre) - reach  # slices between the liver dome and the superior slice
    missing = DOME_MARGIN_MM / spacing[2] - room
    if missing <= 0:
        return grid
    raised = np.asarray(centre, float) + np.array([0.0, 0.0, missing * spacing[2] / abs(d[2, 2])])
    return Grid.centred(shape, spacing, raised, direction)


def generate_case(seed: int, size="small", spacing=None, direction="identity", relations: str = "default",
                  look_alikes: str = "near", progress: Progress | None = None) -> PhantomCase:
    """A deterministic synthetic patient: same seed and arguments give identical images and tables.

    ``direction``: 'identity', 'ras' (diag(-1,-1,1)), 'oblique' (rotated ~14 deg about z, ~6 deg about x),
    or a 3x3 orthonormal matrix. Anatomy is defined in world space, so the grid is what rotates.
    ``relations``: 'default', or 'strong' (spread along chains of positive nodes, and the metastases of a patient
    share one phenotype: a node's status is then better told from its neighbours than from itself).
    ``look_alikes``: 'near' (3-25 mm from the attention structures) or 'spread' (half of them beyond the structures'
    attention bands, where the attention map is 0).
    """
    if relations not in RELATIONS:
        raise ValueError(f"relations must be one of {RELATIONS}")
    if look_alikes not in LOOK_ALIKES:
        raise ValueError(f"look_alikes must be one of {LOOK_ALIKES}")
    progress = progress or Progress()
    rng = np.random.default_rng(seed)
    shape, spacing, factors = resolve_size(size, spacing)
    scale = anatomy_scale(shape, spacing)

    progress.step(0.02, "anatomy")
    anatomy = build_anatomy(rng, scale)
    liver = next(s.shape for s in anatomy.structures if s.name == "liver")
    grid = field_of_view(shape, spacing, CENTRE * scale, direction, liver)
    tissue = paint_anatomy(grid, anatomy)
    objects = np.zeros(grid.shape, np.uint16)
    tumor_voxels = np.isin(tissue, TUMOR_CODES)
    if not tumor_voxels.any():
        raise RuntimeError("phantom tumour fell outside the field of view; use a larger size")
    tumor_shape = next(s.shape for s in anatomy.structures if s.name == "tumor")

    progress.step(0.35, "lymph nodes")
    n_wanted = int(rng.integers(5, 31))
    centres, anchors = place_node_centres(rng, grid, tissue, objects, anatomy, n_wanted)
    parents, lengths = spread_tree(centres, tumor_shape.centre, float(tumor_shape.semi.mean()))
    status = spread_status(rng, parents, lengths, anatomy.scale, relations)
    phenotype = int(rng.choice(3, p=POSITIVE_SUBTYPES)) if relations == "strong" else None
    nodes = []
    for n, centre in enumerate(centres):
        node = node_appearance(rng, centre, bool(status[n]), phenotype)
        node.node_id, node.parent, node.anchor = n + 1, int(parents[n]), anchors[n]
        nodes.append(node)
    all_nodes, lost = list(nodes), {}
    for node in sorted(nodes, key=lambda l: -l.diameter):  # big nodes claim their room first
        fit_to_room(node, make_room(grid, tissue, objects, node, 7.0))
        if paint_lesion(grid, tissue, objects, node, node.node_id) == 0:
            lost[node.node_id] = node.parent  # swallowed by a bigger neighbour: drop it, keep the chain
    for node in nodes:
        while node.parent in lost:
            node.parent = lost[node.parent]
    nodes = [n for n in nodes if n.node_id not in lost]

    progress.step(0.5, "look-alikes")
    n_fake = int(rng.integers(max(6, len(nodes) // 2), 26))
    far_from = outside_attention_bands(grid, tissue) if look_alikes == "spread" else None
    fakes = make_look_alikes(rng, grid, tissue, objects, anatomy, n_fake, [n.centre for n in nodes], far_from)
    lesions: list[Lesion] = list(all_nodes) + list(fakes)  # position in this list = index used for painting
    kept = []
    for index, fake in enumerate(fakes, start=len(all_nodes) + 1):
        if paint_lesion(grid, tissue, objects, fake, index) > 0:
            kept.append(fake)

    progress.step(0.6, "CT")
    tumor_suv = float(rng.uniform(4.0, 12.0))
    tissue_hu, tissue_suv, obj_hu, obj_suv = lookup_tables(lesions, tumor_suv)
    # Each array becomes an image at once and is freed, so a benchmark case never holds two copies of a volume.
    images = {"ct": grid.image(synthesize_ct(grid, tissue, objects, tissue_hu, obj_hu, rng,
                                             noise_hu=float(rng.uniform(10, 18))))}
    progress.step(0.8, "PET")
    pet_grid, pet = synthesize_pet(grid, tissue, objects, tissue_suv, obj_suv, factors, rng)
    images["pet"] = pet_grid.image(pet)

    progress.step(0.9, "labels")
    organ_lut = np.array([t.organ_label for t in TISSUES], np.uint8)
    images["organs"] = grid.image(organ_lut[tissue])
    del tissue
    images["tumor"] = grid.image(tumor_voxels.view(np.uint8))
    del tumor_voxels
    node_lut = np.zeros(len(obj_hu), np.uint16)
    positive_lut = np.zeros(len(obj_hu), np.uint16)
    for node in nodes:
        node_lut[2 * node.node_id: 2 * node.node_id + 2] = node.node_id
        if node.positive:
            positive_lut[2 * node.node_id: 2 * node.node_id + 2] = node.node_id
    images["lymph_nodes"] = grid.image(node_lut[objects])
    images["gtv_ln"] = grid.image(positive_lut[objects])
    del objects

    candidates = _candidate_rows(rng, nodes, kept, pet_grid, pet)
    n_positive = int(sum(n.positive for n in nodes))
    info = {"seed": int(seed), "relations": relations, "look_alikes": look_alikes, "n_nodes": len(nodes),
            "n_positive": n_positive, "n_look_alikes": len(kept), "tumor_suv": round(tumor_suv, 3), "anatomy_scale": round(scale, 4), "generator": "LNStagingLib.phantom"}
    progress.step(1.0, "done")
    return PhantomCase(seed=int(seed), **images, candidates=candidates, metastasis=int(n_positive > 0), info=info)


def _candidate_rows(rng, nodes, fakes, pet_grid, pet) -> list[dict]:
    """Ground-truthed candidate list (nodes + look-alikes) in shuffled order, so ids carry no label."""
    rows = []
    for lesion in nodes + fakes:
        radius = lesion.diameter / 2
        rows.append({
            "x": float(lesion.centre[0]), "y": float(lesion.centre[1]), "z": float(lesion.centre[2]),
            "label": int(lesion.positive), "node_id": lesion.node_id, "kind": lesion.kind,
            "diameter_mm": round(float(lesion.diameter), 2),
            "suv_max": round(max_in_sphere(pet_grid, pet, lesion.centre, radius), 3),
            "parent": lesion.parent if lesion.node_id else -1,
        })
    order = rng.permutation(len(rows))
    out = []
    for new_id, index in enumerate(order, start=1):
        out.append({"id": new_id, **rows[index]})
    return out


__all__ = ["PhantomCase", "SIZES", "generate_case", "resolve_size", "TISSUE"]
