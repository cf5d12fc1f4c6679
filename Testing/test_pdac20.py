"""The published 20-label PDAC convention (pdac20) on real anatomy: every label 1..20 is accepted, and the CLI's
attention map equals a naive full-volume evaluation of paper 2's eq. 1-2 with Table II.

The 20-label map is built from a real TotalSegmentator label map (example_seg.nii.gz: 3 mm, direction
diag(-1, -1, 1)) relabelled to pdac20. Structures that map lacks (oesophagus, the PDAC, the SMV and the four
arteries) are drawn into it at anatomically plausible places: the PDAC replaces part of the pancreas, the SMV is
the lowest part of the portal/splenic vein, and the arteries leave the aorta anteriorly.
"""

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.anatomy.structures import PDAC20_LABELS, map_structures, read_organs
from LNStagingLib.cli import main as cli
from LNStagingLib.errors import AnatomyError

# TotalSegmentator class_map['total'] id -> pdac20 label (Testing/Data/SOURCES.md lists the TotalSegmentator ids)
TOTAL_TO_PDAC20 = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 7, 7: 11, 8: 12, 9: 13, 15: 5, 19: 14, 52: 8, 63: 9, 64: 10}
# Table II of paper 2, written out again here (not imported): pdac20 labels -> (d_min, d_max) mm
TABLE_II_PDAC20 = {(1,): (0, 16), (5,): (0, 25), (7,): (-2, 18), (8,): (0, 28), (11, 19): (-5, 20), (14,): (-5, 22),
                   (16,): (-1, 20), (17,): (-2, 18), (18,): (0, 21), (20,): (0, 20)}


def _walk(array, image, start, world_step, n, label):
    """Paint `label` on up to n voxels from `start` (z, y, x) along a world direction (LPS), on background only."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    step_xyz = np.rint(direction.T @ np.asarray(world_step, float)).astype(int)
    position = np.array(start)
    for _ in range(n):
        position = position + step_xyz[::-1]
        if array[tuple(position)] == 0:
            array[tuple(position)] = label
    return position


def pdac20_from_totalsegmentator(data_dir) -> sitk.Image:
    total = sitk.ReadImage(str(data_dir / "totalsegmentator/example_seg.nii.gz"))
    source = sitk.GetArrayFromImage(total)
    out = np.zeros(source.shape, np.uint8)
    for total_id, label in TOTAL_TO_PDAC20.items():
        out[source == total_id] = label
    # PDAC: the pancreas voxels within 9 mm of the pancreas voxel nearest its centroid (a tumour in the gland).
    pancreas = np.argwhere(out == 11)
    seed = pancreas[np.argmin(((pancreas - pancreas.mean(0)) ** 2).sum(1))]
    spacing_zyx = np.array(total.GetSpacing())[::-1]
    near = (((pancreas - seed) * spacing_zyx) ** 2).sum(1) <= 9.0 ** 2
    out[tuple(pancreas[near].T)] = 19
    # SMV: the most inferior slice of the portal/splenic vein.
    vein = np.argwhere(out == 10)
    lowest = vein[vein[:, 0] == vein[:, 0].min()]  # z index grows superiorly here (direction[2][2] = +1)
    out[tuple(lowest.T)] = 15
    # Arteries from the aorta's most anterior voxel (LPS: anterior = -y) in two axial slices.
    aorta = np.argwhere(out == 8)
    z_mid = int(np.median(aorta[:, 0]))

    def anterior_tip(z):
        slab = aorta[aorta[:, 0] == z]
        world_y = [total.TransformIndexToPhysicalPoint([int(p[2]), int(p[1]), int(p[0])])[1] for p in slab]
        return slab[int(np.argmin(world_y))]
    tc_end = _walk(out, total, anterior_tip(z_mid), (0, -1, 0), 4, 17)  # truncus coeliacus
    _walk(out, total, tc_end, (1, 0, 0), 4, 17)  # splenic artery, to the patient's left
    _walk(out, total, tc_end, (0, 0, 1), 3, 18)  # left gastric artery, cranially
    _walk(out, total, tc_end, (-1, 0, 0), 4, 20)  # common hepatic artery, to the patient's right
    _walk(out, total, anterior_tip(z_mid - 3), (0, -1, 0), 5, 16)  # SMA, below the coeliac trunk
    # Oesophagus: the stomach reaches the top slice; the gastro-oesophageal junction lies medial to its fundus,
    # so it is drawn posterior of the stomach's most medial (patient-right, smallest LPS x) voxel there.
    top = np.argwhere(out[-1] == 7)
    world_x = [total.TransformIndexToPhysicalPoint([int(p[1]), int(p[0]), out.shape[0] - 1])[0] for p in top]
    start = top[int(np.argmin(world_x))]
    _walk(out, total, (out.shape[0] - 1, *start), (0, 1, 0), 4, 5)
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(total)
    return image


def naive_attention(labels: sitk.Image) -> np.ndarray:
    """Eq. 1-2 on the whole volume: one signed distance map per structure, the trapezium of eq. 1 written out,
    the maximum outside all structures and a structure's own score inside it."""
    array = sitk.GetArrayFromImage(labels)
    scores, owner = [], np.full(array.shape, -1)
    for i, (ids, (d_min, d_max)) in enumerate(TABLE_II_PDAC20.items()):
        mask = np.isin(array, ids)
        owner[mask] = i
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(labels)
        d = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                                                useImageSpacing=True))
        f = np.where((d >= d_min) & (d <= d_max), 1.0, 0.0)
        f = np.where((d > d_min - 3) & (d < d_min), (d - d_min + 3) / 3, f)
        f = np.where((d > d_max) & (d < d_max + 3), (d_max + 3 - d) / 3, f)
        scores.append(f)
    scores = np.stack(scores)
    combined = scores.max(0)
    inside = owner >= 0
    combined[inside] = np.take_along_axis(scores, owner[None].clip(0), 0)[0][inside]
    return combined


@pytest.fixture(scope="module")
def pdac20_map(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("pdac20") / "organs.nii.gz"
    sitk.WriteImage(pdac20_from_totalsegmentator(data_dir), str(path))
    return path


def test_the_convention_names_every_label_1_to_20():
    assert sorted(PDAC20_LABELS) == list(range(1, 21))
    assert PDAC20_LABELS[11] == "pancreas" and PDAC20_LABELS[19] == "tumor" and PDAC20_LABELS[6] == "liver"


def test_cli_accepts_all_20_labels_and_matches_naive_eq_1_2(pdac20_map, tmp_path, capsys):
    labels = sitk.ReadImage(str(pdac20_map))
    assert set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist()) == set(range(21))
    out = tmp_path / "attention.nii.gz"
    assert cli(["attention", "--organs", str(pdac20_map), "--mapping", "pdac20", "--out", str(out), "--quiet"]) == 0
    assert "structures absent" not in capsys.readouterr().out
    attention = sitk.ReadImage(str(out))
    assert attention.GetDirection() == labels.GetDirection() and attention.GetOrigin() == labels.GetOrigin()
    got = sitk.GetArrayFromImage(attention)
    want = naive_attention(labels)
    assert np.abs(got - want).max() < 1e-4
    assert (want > 0).sum() > 10000 and (want == 0).sum() > 10000  # both parts of the map are exercised


def test_pdac_merges_with_the_pancreas_and_other_organs_are_no_structure(pdac20_map):
    organs = read_organs(pdac20_map)
    result = map_structures(organs, "pdac20")
    assert result.absent == [] and result.sources["pancreas"] == [11, 19]
    labels = sitk.GetArrayViewFromImage(organs.image)
    structures = sitk.GetArrayViewFromImage(result.image)
    assert np.all(structures[labels == 19] == structures[labels == 11][0])
    for label in (2, 3, 4, 6, 9, 10, 12, 13, 15):
        assert np.all(structures[labels == label] == 0), PDAC20_LABELS[label]


def test_a_value_outside_1_to_20_is_still_refused(pdac20_map):
    organs = read_organs(pdac20_map)
    array = sitk.GetArrayFromImage(organs.image)
    array[0, 0, 0] = 21
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(organs.image)
    with pytest.raises(AnatomyError, match=r"\[21\].*pdac20"):
        map_structures(image, "pdac20")
