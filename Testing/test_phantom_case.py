"""Phantom patients: determinism, geometry, content and ground-truth consistency."""

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.dataset.format import PDAC20_LABELS
from LNStagingLib.phantom import generate_case
from LNStagingLib.phantom.case import SIZES, resolve_size
from LNStagingLib.phantom.grid import Grid

ANCHOR_LABELS = (1, 5, 7, 8, 11, 14, 16, 17, 18, 20)


def arrays(case):
    return {k: sitk.GetArrayFromImage(v) for k, v in case.images().items()}


@pytest.fixture(scope="module")
def small_cases():
    return {d: generate_case(11, size="small", direction=d) for d in ("identity", "oblique", "ras")}


def test_same_seed_gives_identical_images_and_tables(small_cases):
    again = generate_case(11, size="small", direction="identity")
    first = small_cases["identity"]
    a, b = arrays(first), arrays(again)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert first.images()[key].GetDirection() == again.images()[key].GetDirection()
    assert first.candidates == again.candidates
    assert first.metastasis == again.metastasis


def test_different_seed_gives_a_different_patient(small_cases):
    other = generate_case(12, size="small")
    assert not np.array_equal(arrays(other)["ct"], arrays(small_cases["identity"])["ct"])
    assert other.candidates != small_cases["identity"].candidates


def test_small_grid_is_non_isotropic_and_typed(small_cases):
    case = small_cases["identity"]
    assert case.ct.GetSize() == (96, 96, 64)
    assert case.ct.GetSpacing() == (1.5, 1.5, 2.5)
    assert case.ct.GetPixelID() == sitk.sitkInt16
    assert case.pet.GetPixelID() == sitk.sitkFloat32
    for key in ("organs", "tumor", "gtv_ln", "lymph_nodes"):
        image = case.images()[key]
        assert image.GetSize() == case.ct.GetSize() and image.GetOrigin() == case.ct.GetOrigin()
        assert image.GetDirection() == case.ct.GetDirection()


def test_sizes_resolve_to_the_agreed_grids():
    assert resolve_size("benchmark")[0] == (512, 512, 300)
    assert resolve_size("medium")[0] == SIZES["medium"][0]
    assert resolve_size("64x72x40", (2.0, 2.0, 3.0))[:2] == ((64, 72, 40), (2.0, 2.0, 3.0))
    with pytest.raises(ValueError):
        resolve_size("huge")
    case = generate_case(3, size=(64, 72, 40), spacing=(2.0, 2.0, 3.0))
    assert case.ct.GetSize() == (64, 72, 40) and case.ct.GetSpacing() == (2.0, 2.0, 3.0)


def test_direction_rotates_the_grid_not_the_patient(small_cases):
    """Anatomy lives in world (LPS) space: the tumour sits at the same world point whatever the grid direction."""
    centroids = {}
    for name, case in small_cases.items():
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(case.tumor)
        centroids[name] = np.array(stats.GetCentroid(1))
    assert not np.allclose(np.reshape(small_cases["oblique"].ct.GetDirection(), (3, 3)), np.eye(3))
    assert small_cases["ras"].ct.GetDirection() == (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    for name in ("oblique", "ras"):
        assert np.linalg.norm(centroids[name] - centroids["identity"]) < 1.5, name


def test_grid_world_index_round_trip_on_oblique_grid():
    grid = Grid.centred((20, 30, 10), (1.5, 1.0, 2.5), (5.0, -3.0, 12.0), "oblique")
    points = np.array([[0, 0, 0], [19, 29, 9], [3.5, 7.25, 1.0]])
    image = grid.image(np.zeros(grid.shape, np.uint8))
    for p in points:
        world = grid.to_world(p)
        np.testing.assert_allclose(world, image.TransformContinuousIndexToPhysicalPoint(p.tolist()), atol=1e-6)
        np.testing.assert_allclose(grid.to_index(world), p, atol=1e-6)
    x, y, z = grid.world_coordinates((slice(2, 3), slice(5, 6), slice(7, 8)))
    np.testing.assert_allclose([x.item(), y.item(), z.item()], image.TransformIndexToPhysicalPoint((7, 5, 2)), atol=1e-4)


@pytest.mark.parametrize("direction", ["identity", "oblique", "ras"])
def test_ground_truth_is_consistent(small_cases, direction):
    case = small_cases[direction]
    a = arrays(case)
    organ_ids = set(np.unique(a["organs"]).tolist()) - {0}
    assert organ_ids <= set(PDAC20_LABELS)
    assert set(ANCHOR_LABELS) | {19} <= organ_ids, "all ten anchor structures and the tumour are in view"
    assert a["tumor"].any() and set(np.unique(a["tumor"]).tolist()) == {0, 1}
    assert np.all(a["organs"][a["tumor"] > 0] == 19)
    node_ids = set(np.unique(a["lymph_nodes"]).tolist()) - {0}
    gtv_ids = set(np.unique(a["gtv_ln"]).tolist()) - {0}
    assert 5 <= len(node_ids) <= 30 and gtv_ids <= node_ids
    assert np.all(a["lymph_nodes"][a["gtv_ln"] > 0] == a["gtv_ln"][a["gtv_ln"] > 0])
    assert not np.any((a["lymph_nodes"] > 0) & (a["organs"] > 0)), "nodes do not overlap organs or vessels"
    assert case.metastasis == int(bool(gtv_ids))
    rows = case.candidates
    assert sorted(r["id"] for r in rows) == list(range(1, len(rows) + 1))
    assert {r["node_id"] for r in rows if r["node_id"]} == node_ids
    assert {r["node_id"] for r in rows if r["label"] == 1} == gtv_ids
    assert {r["kind"] for r in rows} - {"node"}, "look-alikes are present"
    for r in rows:  # each node candidate's world point falls inside its own label (geometry through the direction)
        index = case.lymph_nodes.TransformPhysicalPointToIndex((r["x"], r["y"], r["z"]))
        value = a["lymph_nodes"][index[2], index[1], index[0]]
        assert value == r["node_id"] if r["node_id"] else value == 0
        if r["node_id"]:
            assert 1.5 <= r["diameter_mm"] <= 25.0


def test_anatomy_intensities_are_plausible(small_cases):
    case = small_cases["identity"]
    a = arrays(case)
    ct, organs = a["ct"], a["organs"]
    assert abs(np.median(ct[organs == 11]) - 42) < 15, "pancreas ~40 HU"
    assert np.median(ct[organs == 8]) > 100, "contrast aorta"
    assert (ct > 500).sum() > 1000, "spine"
    top, bottom = ct[-ct.shape[0] // 4:], ct[: ct.shape[0] // 4]
    assert (top < -700).mean() > (bottom < -700).mean() + 0.1, "lungs (air) in the upper part, beyond the air around the body"
    pet = sitk.GetArrayFromImage(sitk.Resample(case.pet, case.ct, sitk.Transform(), sitk.sitkLinear, 0.0))
    assert pet[a["tumor"] > 0].max() > 2 * np.median(pet[organs == 11]), "hot primary tumour"


def test_nodes_lie_near_the_attention_structures(small_cases):
    """Nodes are placed at paper 2 Table II distances (<= 28 mm + nudging) from the ten structures."""
    case = small_cases["identity"]
    organs = sitk.GetArrayFromImage(case.organs)
    mask = sitk.GetImageFromArray(np.isin(organs, ANCHOR_LABELS).astype(np.uint8))
    mask.CopyInformation(case.organs)
    distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False,
                                                                   useImageSpacing=True))
    for r in case.candidates:
        if r["node_id"]:
            i, j, k = case.organs.TransformPhysicalPointToIndex((r["x"], r["y"], r["z"]))
            assert 0 < distance[k, j, i] < 40, r


@pytest.mark.parametrize("direction", ["identity", "ras"])
def test_phantom_writes_the_pdac20_convention_beyond_the_attention_structures(small_cases, direction):
    """Liver 6, kidneys 2 (right) / 3 (left), IVC 9 and portal vein 10 carry their published pdac20 labels; the
    right kidney lies on the patient's right (smaller LPS x) in every grid orientation."""
    case = small_cases[direction]
    organs = case.images()["organs"]
    a = sitk.GetArrayFromImage(organs)
    assert {2, 3, 6, 9, 10} <= set(np.unique(a).tolist())
    assert PDAC20_LABELS[2] == "right_kidney" and PDAC20_LABELS[9] == "inferior_vena_cava"

    def mean_x(label):
        index = np.argwhere(a == label)[:, ::-1].astype(float)
        return np.mean([organs.TransformContinuousIndexToPhysicalPoint(p)[0] for p in index[::50]])
    assert mean_x(2) < mean_x(3)
