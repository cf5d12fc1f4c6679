"""Synthetic upper-abdominal anatomy: a tissue table and one patient's organs and vessels as shapes.

Coordinates are written in a "patient frame" (mm, LPS: +x patient left, +y posterior, +z superior; origin
in front of the aorta at the level of the pancreas) and multiplied by ``scale`` so small test volumes hold a
shrunken but complete set of structures. Lymph-node placement uses the ten structures of paper 2 (Table II)
with their distance ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import EllipticCylinder, Ellipsoid, Tube, Within, random_rotation


@dataclass(frozen=True)
class Tissue:
    code: int
    name: str
    hu: float
    suv: float
    organ_label: int = 0  # pdac20 label (anatomy.structures.PDAC20_LABELS) written to organs.nii.gz (0 = none)


TISSUES = [
    Tissue(0, "air", -1000, 0.0),
    Tissue(1, "subcutaneous_fat", -105, 0.3),
    Tissue(2, "muscle", 50, 0.7),
    Tissue(3, "visceral_fat", -90, 0.35),
    Tissue(4, "lung", -850, 0.3),
    Tissue(5, "liver", 58, 2.3, 6),
    Tissue(6, "kidney", 35, 3.0, 2),  # the right kidney (patient right, -x)
    Tissue(7, "heart", 40, 2.6),
    Tissue(8, "bone", 700, 1.4),
    Tissue(9, "spinal_canal", 20, 0.8),
    Tissue(10, "vein", 100, 1.6, 9),  # the inferior vena cava
    Tissue(11, "spleen", 48, 2.0, 1),
    Tissue(12, "esophagus", 40, 1.8, 5),
    Tissue(13, "esophagus_lumen", -900, 0.2, 5),
    Tissue(14, "stomach_wall", 40, 2.2, 7),
    Tissue(15, "stomach_content", 15, 1.0, 7),
    Tissue(16, "stomach_gas", -900, 0.1, 7),
    Tissue(17, "aorta", 150, 1.7, 8),
    Tissue(18, "pancreas", 42, 1.5, 11),
    Tissue(19, "duodenum_wall", 40, 2.0, 14),
    Tissue(20, "duodenum_content", 15, 1.2, 14),
    Tissue(21, "sma", 150, 1.7, 16),
    Tissue(22, "celiac_splenic_artery", 150, 1.7, 17),
    Tissue(23, "left_gastric_artery", 150, 1.7, 18),
    Tissue(24, "hepatic_artery", 150, 1.7, 20),
    Tissue(25, "tumor", 28, 6.0, 19),
    Tissue(26, "tumor_necrosis", 12, 1.5, 19),
    # Appended (codes above are stable): tissues that differ from one above only by their pdac20 label.
    Tissue(27, "kidney_left", 35, 3.0, 3),
    Tissue(28, "portal_vein", 100, 1.6, 10),
]
TISSUE = {t.name: t.code for t in TISSUES}
N_TISSUES = len(TISSUES)
NODE_ALLOWED = (TISSUE["visceral_fat"],)  # lymph nodes and look-alikes sit in visceral fat
TUMOR_CODES = (TISSUE["tumor"], TISSUE["tumor_necrosis"])

# Paper 2, Table II: d_min, d_max (mm) of lymph-node voxels to each structure; weight = how many nodes we put there.
ANCHORS = {
    "spleen": (0, 16, 0.6), "esophagus": (0, 25, 0.8), "stomach": (-2, 18, 1.5), "aorta": (0, 28, 2.0),
    "pancreas": (-5, 20, 3.0), "duodenum": (-5, 22, 1.5), "sma": (-1, 20, 2.0), "celiac_splenic_artery": (-2, 18, 2.0),
    "left_gastric_artery": (0, 21, 1.0), "hepatic_artery": (0, 20, 2.0),
}


@dataclass
class Structure:
    name: str
    tissue: int
    shape: object


@dataclass
class Anatomy:
    structures: list[Structure]        # painted in this order (later wins)
    anchors: dict[str, list]           # structure name -> shapes nodes may be placed against
    pancreas: Tube
    scale: float


def build_anatomy(rng: np.random.Generator, scale: float) -> Anatomy:
    """One patient's anatomy, with small random variation in position and size."""
    size = rng.uniform(0.93, 1.07)
    s = scale * size

    def P(*xyz, sd=2.0):  # a jittered patient-frame point, in world mm
        return (np.asarray(xyz, float) + rng.normal(0, sd, 3)) * s

    def R(r):
        return r * s

    def tube(points, radius, sd=2.0):
        return Tube(np.array([P(*p, sd=sd) for p in points]), np.asarray(radius, float) * s)

    far = 600.0
    st: list[Structure] = []
    add = lambda name, tissue, shape: st.append(Structure(name, TISSUE[tissue], shape))  # noqa: E731

    add("body", "subcutaneous_fat", EllipticCylinder(0, R(10), R(165), R(115), -far, far))
    add("abdominal_wall", "muscle", EllipticCylinder(0, R(10), R(150), R(101), -far, far))
    cavity = EllipticCylinder(0, R(6), R(140), R(92), -far, far)
    add("cavity", "visceral_fat", cavity)
    for side in (-1, 1):
        add("paraspinal_muscle", "muscle", EllipticCylinder(R(38 * side), R(96), R(28), R(22), -far, far))
    for side in (-1, 1):
        # inside the cavity (the chest wall): a lung reaching the skin would join the outside air in a CT body mask
        add("lung", "lung", Within(Ellipsoid(P(85 * side, 15, 215, sd=3), np.array([70, 88, 165]) * s), cavity))
    add("heart", "heart", Ellipsoid(P(15, -35, 180, sd=3), np.array([65, 52, 62]) * s))
    add("liver", "liver", Ellipsoid(P(-90, 5, 66, sd=3), np.array([66, 80, 64]) * s))
    for side in (-1, 1):
        add("kidney", "kidney" if side < 0 else "kidney_left", Ellipsoid(P(76 * side, 66, -22, sd=3),
                                                                         np.array([24, 21, 52]) * s))
    a = np.deg2rad(rng.uniform(20, 40))
    spleen_rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    spleen = Ellipsoid(P(116, 46, 50, sd=3), np.array([21, 44, 52]) * s, spleen_rot)
    add("spleen", "spleen", spleen)

    # Stomach: body (ellipsoid) + antrum (tube), each with wall, fluid and an anterior gas cap (supine).
    stomach_c = P(60, -35, 46, sd=3)
    stomach_semi = np.array([40, 32, 45]) * s
    stomach = Ellipsoid(stomach_c, stomach_semi)
    antrum = tube([(38, -40, 40), (8, -42, 30), (-22, -35, 25)], [14, 12, 11])
    wall = 4.0 * s
    add("stomach", "stomach_wall", stomach)
    add("stomach", "stomach_wall", antrum)
    add("stomach_content", "stomach_content", Ellipsoid(stomach_c, stomach_semi - wall))
    add("stomach_content", "stomach_content", Tube(antrum.points, antrum.radii - wall))
    gas_level = stomach_c[1] - rng.uniform(0.35, 0.6) * stomach_semi[1]
    add("stomach_gas", "stomach_gas", Ellipsoid(stomach_c, stomach_semi - wall, clip=(1, -1e9, gas_level)))

    pancreas = tube([(-48, -2, -12), (-30, -12, -5), (-5, -18, 2), (25, -12, 8), (55, 0, 12), (80, 18, 17), (92, 27, 21)],
                    [17, 15, 12, 12, 11, 10, 8])
    add("pancreas", "pancreas", pancreas)
    duo_pts = [(-25, -35, 25), (-55, -25, 20), (-72, -8, 5), (-72, 0, -25), (-55, 5, -45), (-25, 0, -52), (5, -5, -48),
               (20, -10, -38)]
    duodenum = tube(duo_pts, 11)
    add("duodenum", "duodenum_wall", duodenum)
    add("duodenum_content", "duodenum_content", Tube(duodenum.points, duodenum.radii - wall))
    n_gas = int(rng.integers(0, len(duo_pts) - 1))
    add("duodenum_gas", "stomach_gas", Tube(duodenum.points[n_gas:n_gas + 2], (duodenum.radii[:2] - wall) * 0.7))

    spine_c = np.array([0, 70]) * s
    add("vertebra", "bone", EllipticCylinder(spine_c[0], spine_c[1], R(22), R(20), -far, far))
    add("vertebral_arch", "bone", EllipticCylinder(0, R(110), R(14), R(10), -far, far))
    add("spinal_canal", "spinal_canal", EllipticCylinder(0, R(97), R(8), R(8), -far, far))

    add("ivc", "vein", tube([(-25, 40, far / s), (-22, 38, 0), (-22, 38, -far / s)], 11, sd=1))
    add("portal_vein", "portal_vein", tube([(-10, -2, -110), (-14, -4, -30), (-17, -3, 0), (-35, -4, 25), (-52, 0, 45)],
                                   [6, 7, 8, 7, 6], sd=1.5))
    esophagus = tube([(-5, 32, far / s), (0, 28, 110), (15, 10, 75), (38, -8, 58)], 8.5, sd=1.5)
    add("esophagus", "esophagus", esophagus)
    add("esophagus_lumen", "esophagus_lumen", Tube(esophagus.points[:2], esophagus.radii[:2] * 0.25))
    aorta = tube([(28, 48, far / s), (22, 46, 120), (8, 38, 40), (6, 38, -far / s)], 11, sd=1)

    # Tumour in the pancreas (head ~65%, as in paper 2's cohorts), then vessels so they stay visible through it.
    tumor_shapes = _tumor(rng, pancreas, s)
    for shape, tissue in tumor_shapes:
        add("tumor", tissue, shape)

    add("aorta", "aorta", aorta)
    bif = P(9, 2, 28, sd=1.5)
    celiac = Tube(np.array([P(8, 28, 25, sd=0.5), P(8, 12, 27, sd=1), bif]), 3.5 * s)
    splenic = Tube(np.array([bif, P(35, 6, 26), P(60, 16, 30), P(84, 26, 34), P(100, 38, 42)]), 2.5 * s)
    hepatic = Tube(np.array([bif, P(-15, 2, 25), P(-32, 0, 22), P(-40, -5, 40), P(-45, -8, 58)]), 2.5 * s)
    lga = Tube(np.array([bif, P(15, -5, 38), P(28, -15, 52)]), 1.8 * s)
    sma = tube([(8, 28, 10), (8, 15, 5), (6, 5, -15), (4, 0, -50), (0, -5, -120)], 3.5, sd=1)
    for name, tissue, shape in (("celiac", "celiac_splenic_artery", celiac), ("splenic", "celiac_splenic_artery", splenic),
                                ("hepatic", "hepatic_artery", hepatic), ("lga", "left_gastric_artery", lga),
                                ("sma", "sma", sma)):
        add(name, tissue, shape)

    anchors = {"spleen": [spleen], "esophagus": [esophagus], "stomach": [stomach, antrum], "aorta": [aorta],
               "pancreas": [pancreas], "duodenum": [duodenum], "sma": [sma], "celiac_splenic_artery": [celiac, splenic],
               "left_gastric_artery": [lga], "hepatic_artery": [hepatic]}
    return Anatomy(st, anchors, pancreas, s)


def _tumor(rng: np.random.Generator, pancreas: Tube, s: float):
    """The primary: an ellipsoid on the pancreas axis, 2-4 cm (shrunk with the anatomy), sometimes necrotic."""
    head = rng.uniform() < 0.65
    segment = int(rng.integers(0, 2)) if head else int(rng.integers(2, len(pancreas.points) - 2))
    t = rng.uniform(0.2, 0.8)
    a, b = pancreas.points[segment], pancreas.points[segment + 1]
    radius = pancreas.radii[segment] + t * (pancreas.radii[segment + 1] - pancreas.radii[segment])
    centre = a + t * (b - a) + rng.normal(0, 0.25 * radius, 3)
    diameter = rng.uniform(20, 38) * np.sqrt(s)
    semi = diameter / 2 * np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0)])
    rotation = random_rotation(rng)
    shapes = [(Ellipsoid(centre, semi, rotation), "tumor")]
    if rng.uniform() < 0.3:
        shapes.append((Ellipsoid(centre, semi * 0.45, rotation), "tumor_necrosis"))
    return shapes
