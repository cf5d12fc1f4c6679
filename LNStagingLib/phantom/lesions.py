"""Lymph nodes, their metastatic status, and the look-alikes a detector would also propose.

Status is a spread process, not a coin per node: a minimum spanning tree over the tumour and the node centres
is rooted at the tumour; a node is positive with a probability that depends on its parent's status and the
edge length (tumour and positive parents spread, negative parents rarely "skip"). Appearance then depends on
status but overlaps between classes (small hot positives blurred by the PET, low-avid positives, large
reactive negatives), so relations between candidates carry information a single node does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree
from scipy.spatial.distance import cdist

from .anatomy import ANCHORS, NODE_ALLOWED, TISSUES, Anatomy
from .grid import Grid
from .shapes import Ellipsoid, Tube, bent_tube, random_rotation, unit

MAX_NODE_RADIUS = 12.5


@dataclass
class Lesion:
    """A lymph node (node_id > 0) or a look-alike (node_id == 0) with its appearance."""

    kind: str                      # node | vessel | bowel | hot_spot
    centre: np.ndarray             # world mm (LPS)
    body: object = None            # shape painted with (hu, suv)
    core: object = None            # optional inner shape painted with (core_hu, core_suv)
    hu: float = 40.0
    suv: float = 1.0
    core_hu: float = 0.0
    core_suv: float = 0.0
    node_id: int = 0
    positive: bool = False
    parent: int = -1               # node id of the parent in the spread tree; 0 = the tumour; -1 = not a node
    anchor: str = ""
    diameter: float = 0.0          # nominal diameter (mm)


def clearance(grid: Grid, tissue: np.ndarray, objects: np.ndarray, centre: np.ndarray, rmax: float) -> float:
    """Distance (mm) from ``centre`` to the nearest voxel a lesion may not occupy, capped at ``rmax``."""
    box = grid.index_box(centre - rmax, centre + rmax)
    if box is None:
        return 0.0
    x, y, z = grid.world_coordinates(box)
    d2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
    blocked = ~np.isin(tissue[box], NODE_ALLOWED) | (objects[box] > 0)
    if not blocked.any():
        return rmax
    return float(min(rmax, np.sqrt(d2[blocked].min())))


def inside_grid(grid: Grid, centre: np.ndarray, margin_mm: float) -> bool:
    idx = grid.to_index(centre)
    margin = margin_mm / np.asarray(grid.spacing)
    return bool(np.all(idx >= margin) and np.all(idx <= np.asarray(grid.size) - 1 - margin))


def _voxel_tissue(grid: Grid, tissue: np.ndarray, point: np.ndarray) -> int:
    i, j, k = np.round(grid.to_index(point)).astype(int)
    return int(tissue[k, j, i])


def sample_site(rng, grid, tissue, objects, anatomy: Anatomy, names, weights, gap, margin, min_clear, others,
                min_sep, tries=60, allowed=None):
    """A centre near one of the anchor structures, in fat, inside the grid, away from ``others`` (and where
    ``allowed(centre)`` holds, if given); or None."""
    p = np.asarray(weights, float) / np.sum(weights)
    for _ in range(tries):
        name = names[rng.choice(len(names), p=p)]
        shapes = anatomy.anchors[name]
        point, normal = shapes[rng.integers(len(shapes))].surface_point(rng)
        centre = point + normal * gap(name)
        if not inside_grid(grid, centre, margin):
            continue
        if _voxel_tissue(grid, tissue, centre) not in NODE_ALLOWED:
            continue
        if others and np.min(np.linalg.norm(np.asarray(others) - centre, axis=1)) < min_sep:
            continue
        if allowed is not None and not allowed(centre):
            continue
        room = clearance(grid, tissue, objects, centre, MAX_NODE_RADIUS)
        if room < min_clear:
            continue
        return centre, name, room
    return None


def place_node_centres(rng, grid, tissue, objects, anatomy: Anatomy, count: int):
    """Centres of ``count`` nodes at Table II distances from their anchor structures (fewer if room runs out)."""
    names = list(ANCHORS)
    weights = [ANCHORS[n][2] for n in names]

    def gap(name):  # centre distance from the anchor's surface
        d_max = ANCHORS[name][1]
        return rng.uniform(2.5, max(4.0, d_max - 4.0))

    centres, anchors = [], []
    margin = min(MAX_NODE_RADIUS, 6.0) + 1.0
    for _ in range(count):
        site = sample_site(rng, grid, tissue, objects, anatomy, names, weights, gap, margin, 2.0, centres, 7.0)
        if site is not None:
            centres.append(site[0])
            anchors.append(site[1])
    return np.array(centres).reshape(-1, 3), anchors


def spread_tree(centres: np.ndarray, tumour_centre: np.ndarray, tumour_radius: float):
    """Parent (0 = tumour, else node id = index + 1) and edge length of each node in the MST rooted at the tumour."""
    points = np.vstack([tumour_centre[None, :], centres])
    d = cdist(points, points)
    d[0, 1:] = d[1:, 0] = np.maximum(d[0, 1:] - tumour_radius, 0.5)
    weights = d + 1e-3
    np.fill_diagonal(weights, 0)
    tree = minimum_spanning_tree(weights)
    _, predecessors = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    parents = predecessors[1:].astype(int)
    lengths = d[np.arange(1, len(points)), parents]
    return parents, lengths


RELATIONS = ("default", "strong")


def spread_status(rng, parents: np.ndarray, lengths: np.ndarray, scale: float, relations: str = "default") -> np.ndarray:
    """Metastatic status of each node, drawn from the tumour outwards along the tree.

    ``relations='strong'``: spread continues along a chain of positive nodes whatever the edge length (p 0.9) and
    almost never skips a negative node (p 0.02), so a node's status follows its neighbours' far more than its
    distance to the tumour (the structure paper 1's graph head is meant to exploit).
    """
    n = len(parents)
    status = np.zeros(n, bool)
    aggressiveness = 0.0 if rng.uniform() < 0.35 else rng.uniform(0.7, 1.0)
    # Scale-free reaches, relative to this patient's tree, so small (shrunken) and adult phantoms behave alike.
    reach = 3.0 * float(np.median(lengths)) if len(lengths) else 1.0
    reach_tumour = 3.0 * float(np.median(lengths[parents == 0])) if np.any(parents == 0) else 1.0
    children = [[] for _ in range(n + 1)]
    for child, parent in enumerate(parents, start=1):
        children[parent].append(child)
    queue = list(children[0])
    while queue:
        node = queue.pop(0)
        parent = parents[node - 1]
        length = lengths[node - 1]
        if parent == 0:
            p = 0.95 * np.exp(-length / reach_tumour)
        elif status[parent - 1]:
            p = 0.9 if relations == "strong" else 0.9 * np.exp(-length / reach)
        else:
            p = 0.02 if relations == "strong" else 0.07
        status[node - 1] = rng.uniform() < aggressiveness * p
        queue.extend(children[node])
    return status


POSITIVE_SUBTYPES = (0.45, 0.3, 0.25)  # bulky avid, small hot, low-avid


def node_appearance(rng, centre, positive: bool, positive_subtype: int | None = None) -> Lesion:
    """Size, shape, density and uptake of a node, by status, with deliberate overlap between classes.

    ``positive_subtype`` forces the subtype of a positive node (a patient whose metastases share one phenotype).
    """
    rotation = random_rotation(rng)
    lognormal = lambda median, sd: float(np.exp(rng.normal(np.log(median), sd)))  # noqa: E731
    if positive:
        subtype = rng.choice(3, p=POSITIVE_SUBTYPES)
        if positive_subtype is not None:
            subtype = positive_subtype
        if subtype == 0:    # bulky, avid
            diameter, suv = lognormal(12.0, 0.3), rng.uniform(3.0, 10.0)
        elif subtype == 1:  # small but hot: the PET blur hides most of its uptake
            diameter, suv = rng.uniform(4.0, 8.0), rng.uniform(4.0, 10.0)
        else:               # low-avid
            diameter, suv = lognormal(10.0, 0.35), rng.uniform(1.2, 2.5)
        diameter = float(np.clip(diameter, 4, 25))
        ratios = np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0)])
        hu = rng.uniform(30, 50)
        core = ("necrosis", rng.uniform(5, 20), 0.3) if diameter >= 12 and rng.uniform() < 0.35 else None
    else:
        subtype = rng.choice(3, p=[0.65, 0.2, 0.15])
        if subtype == 0:    # normal, small, elongated
            diameter, suv = lognormal(6.0, 0.4), rng.uniform(0.8, 2.0)
        elif subtype == 1:  # reactive: enlarged and mildly avid
            diameter, suv = lognormal(11.0, 0.3), rng.uniform(2.0, 4.5)
        else:               # large and cold
            diameter, suv = lognormal(14.0, 0.25), rng.uniform(0.8, 1.8)
        diameter = float(np.clip(diameter, 3, 22))
        ratios = np.array([1.0, rng.uniform(0.45, 0.9), rng.uniform(0.5, 0.95)])
        hu = rng.uniform(20, 45)
        core = ("hilum", rng.uniform(-80, -40), 0.5) if diameter >= 8 and rng.uniform() < 0.4 else None
    semi = diameter / 2 * ratios / np.cbrt(ratios.prod())
    lesion = Lesion("node", np.asarray(centre, float), Ellipsoid(centre, semi, rotation), hu=hu, suv=suv,
                    positive=positive, diameter=diameter)
    if core is not None:
        kind, lesion.core_hu, factor = core
        lesion.core_suv = suv * factor
        offset = rotation[:, 0] * semi[0] * (0.4 if kind == "hilum" else 0.0)
        lesion.core = Ellipsoid(np.asarray(centre) + offset, semi * (0.45 if kind == "hilum" else 0.5), rotation)
    return lesion


def nearest_blocked(grid: Grid, tissue, objects, centre: np.ndarray, rmax: float):
    """The nearest voxel centre (world) a lesion may not occupy within ``rmax``, or None."""
    box = grid.index_box(centre - rmax, centre + rmax)
    if box is None:
        return None
    x, y, z = grid.world_coordinates(box)
    d2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
    blocked = ~np.isin(tissue[box], NODE_ALLOWED) | (objects[box] > 0)
    if not blocked.any():
        return None
    n = np.argmin(np.where(blocked, d2, np.inf))
    return np.array([np.broadcast_to(x, d2.shape).flat[n],
                     np.broadcast_to(y, d2.shape).flat[n], np.broadcast_to(z, d2.shape).flat[n]])


def make_room(grid: Grid, tissue, objects, lesion: Lesion, margin_mm: float, steps: int = 3) -> float:
    """Nudge a node away from whatever crowds it (at most ~3 mm a step) until its longest semi-axis fits; return the room."""
    want = float(lesion.body.semi.max())
    room = clearance(grid, tissue, objects, lesion.centre, want)
    for _ in range(steps):
        if room >= want:
            break
        blocker = nearest_blocked(grid, tissue, objects, lesion.centre, want)
        if blocker is None:
            break
        away = lesion.centre - blocker
        away /= max(np.linalg.norm(away), 1e-6)
        moved = lesion.centre + away * min(want - room, 3.0)
        if not inside_grid(grid, moved, margin_mm) or _voxel_tissue(grid, tissue, moved) not in NODE_ALLOWED:
            break
        new_room = clearance(grid, tissue, objects, moved, want)
        if new_room <= room:
            break
        shift = moved - lesion.centre
        lesion.centre = moved
        lesion.body.centre = lesion.body.centre + shift
        if lesion.core is not None:
            lesion.core.centre = lesion.core.centre + shift
        room = new_room
    return room


def fit_to_room(lesion: Lesion, room: float) -> None:
    """Shrink a node so that its longest semi-axis fits the free space around its centre (min 1.5 mm)."""
    longest = float(lesion.body.semi.max())
    factor = min(1.0, max(room + 0.5, 1.5) / longest)
    if factor < 1.0:
        lesion.body.semi = lesion.body.semi * factor
        if lesion.core is not None:
            lesion.core.semi = lesion.core.semi * factor
            lesion.core.centre = lesion.centre + (lesion.core.centre - lesion.centre) * factor
        lesion.diameter *= factor


def look_alike(rng, centre, room: float) -> Lesion:
    """A false candidate: an unlabelled vessel cross-section, a bowel loop or a hot non-nodal spot."""
    kind = ("vessel", "bowel", "hot_spot")[rng.choice(3, p=[0.4, 0.3, 0.3])]
    centre = np.asarray(centre, float)
    if kind == "hot_spot":
        d = min(rng.uniform(4, 14), 2 * room + 1)
        ratios = np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)])
        return Lesion(kind, centre, Ellipsoid(centre, d / 2 * ratios, random_rotation(rng)),
                      hu=rng.uniform(-60, 40), suv=rng.uniform(3.0, 9.0), diameter=d)
    direction = np.array([0.0, 0.0, 1.0]) + 0.6 * unit(rng)
    if kind == "vessel":
        radius = min(rng.uniform(2.0, 5.0), room + 0.5)
        length = rng.uniform(15, 40)
        tube = bent_tube(rng, centre - direction / np.linalg.norm(direction) * length / 2, direction, length, radius, 0.3)
        tube.points += centre - tube.points[2]  # the middle vertex is the candidate centre
        return Lesion(kind, centre, tube, hu=rng.uniform(60, 160), suv=rng.uniform(1.4, 2.0), diameter=2 * radius)
    radius = min(rng.uniform(6.0, 11.0), room + 1.0)
    length = rng.uniform(25, 60)
    tube = bent_tube(rng, centre - direction / np.linalg.norm(direction) * length / 2, direction, length, radius, 0.6)
    tube.points += centre - tube.points[2]
    lumen = Tube(tube.points, np.maximum(tube.radii - 2.5, 0.5))
    gas = rng.uniform() < 0.3
    return Lesion(kind, centre, tube, lumen, hu=40.0, suv=rng.uniform(1.5, 4.0),
                  core_hu=-900.0 if gas else rng.uniform(-20, 20), core_suv=0.1 if gas else 1.0, diameter=2 * radius)


LOOK_ALIKES = ("near", "spread")
BAND_MARGIN_MM = 3.0  # the trapezoid's border beyond d_max (priors/trapezoid.py)


def outside_attention_bands(grid: Grid, tissue: np.ndarray):
    """A test ``centre -> bool``: True where the centre is farther than d_max + the border from all ten structures,
    i.e. where paper 2's attention map is 0 (distance maps on the voxel grid, in mm). A structure is every tissue
    that carries its organ label (stomach wall, content and gas are the stomach)."""
    from scipy import ndimage

    organs = np.array([t.organ_label for t in TISSUES], np.uint8)[tissue]
    inside_band = np.zeros(tissue.shape, bool)
    for name, (_, d_max, _) in ANCHORS.items():
        label = next(t.organ_label for t in TISSUES if t.name == name or t.name.startswith(name + "_"))
        mask = organs == label
        if mask.any():
            distance = ndimage.distance_transform_edt(~mask, sampling=tuple(grid.spacing)[::-1])
            inside_band |= distance <= d_max + BAND_MARGIN_MM

    def allowed(centre) -> bool:
        i, j, k = np.round(grid.to_index(centre)).astype(int)
        return not inside_band[k, j, i]
    return allowed


def make_look_alikes(rng, grid, tissue, objects, anatomy: Anatomy, count: int, others, far_from=None) -> list[Lesion]:
    """False candidates 3-25 mm from the ten attention structures. With ``far_from`` (a test from
    outside_attention_bands), every second one lies beyond all the structures' attention bands instead, where real
    bowel and uptake often lie and paper 2's attention map is 0."""
    names = list(ANCHORS)
    weights = [ANCHORS[n][2] for n in names]
    out, centres = [], list(others)
    near = lambda n: rng.uniform(3.0, 25.0)  # noqa: E731
    far = lambda n: rng.uniform(ANCHORS[n][1] + 6.0, ANCHORS[n][1] + 60.0)  # noqa: E731
    for k in range(count):
        spread = far_from is not None and k % 2 == 1
        site = sample_site(rng, grid, tissue, objects, anatomy, names, weights, far if spread else near, 8.0, 1.5,
                           centres, 6.0, tries=200 if spread else 60, allowed=far_from if spread else None)
        if site is not None:
            out.append(look_alike(rng, site[0], site[2]))
            centres.append(site[0])
    return out
