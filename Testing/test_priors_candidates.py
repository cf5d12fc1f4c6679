"""Per-candidate spatial priors (paper 1, sec. 2.2) on a real CT with an analytic tumour, and profile fitting."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.anatomy.lung import lung_mask
from LNStagingLib.cli import main as cli
from LNStagingLib.errors import GeometryError
from LNStagingLib.priors.candidate_priors import PRIOR_NAMES, TUMOR_PRIORS, candidate_priors
from LNStagingLib.priors.fit import fit_from_distances
from LNStagingLib.priors.profile import load_profile


@pytest.fixture(scope="module")
def case(data_dir):
    """Real abdominal CT (direction diag(-1,-1,1)), its lung mask, and a 10 mm sphere 'tumour' on its grid."""
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct.nii.gz"))
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint((60.0, 50.0, 95.0)))
    idx = np.argwhere(np.ones(sitk.GetArrayViewFromImage(ct).shape, bool))
    from LNStagingLib.anatomy.body import world_points

    dist = np.linalg.norm(world_points(ct, idx) - centre, axis=1).reshape(sitk.GetArrayViewFromImage(ct).shape)
    tumor = sitk.GetImageFromArray((dist <= 10.0).astype(np.uint8))
    tumor.CopyInformation(ct)
    return ct, lung_mask(ct), tumor, centre


def test_tumour_distance_and_angles_are_analytic(case):
    ct, lung, tumor, centre = case
    offsets = np.array([[0, 0, 30.0], [25.0, 0, 0], [0, 40.0, 0], [-20.0, -20.0, 0], [0, 0, 0]])
    table = candidate_priors(ct, centre + offsets, tumor=tumor, lung=lung)
    assert table.names == PRIOR_NAMES and table.values.shape == (5, len(PRIOR_NAMES))
    col = {name: table.values[:, i] for i, name in enumerate(PRIOR_NAMES)}
    expected = np.maximum(np.linalg.norm(offsets, axis=1) - 10.0, 0.0)
    assert np.abs(col["tumor_distance_mm"] - expected).max() <= 1.5 + 0.3  # 3 mm voxels: within half a voxel
    assert col["tumor_distance_mm"][4] == 0.0
    assert col["tumor_elevation_deg"][0] == pytest.approx(90, abs=3)  # straight up (superior)
    assert col["tumor_elevation_deg"][1] == pytest.approx(0, abs=3)
    assert col["tumor_azimuth_deg"][1] == pytest.approx(0, abs=3)  # +x = patient left
    assert col["tumor_azimuth_deg"][2] == pytest.approx(90, abs=3)  # +y = posterior
    assert col["tumor_azimuth_deg"][3] == pytest.approx(-135, abs=3)  # right-anterior
    assert ((col["x_norm"] >= 0) & (col["x_norm"] <= 1)).all()
    assert "z_norm" in table.missing and "apex" in table.missing["z_norm"]  # abdomen scan: lung apex not imaged
    assert all("z_norm" not in row and "x_norm" in row for row in table.rows())


def test_same_priors_on_the_identity_oriented_copy(case):
    ct, lung, tumor, centre = case
    points = centre + np.array([[15.0, -30.0, 20.0], [-40.0, 10.0, -15.0]])
    first = candidate_priors(ct, points, tumor=tumor, lung=lung)
    flipped = [sitk.DICOMOrient(im, "LPS") for im in (ct, lung, tumor)]
    assert flipped[0].GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    second = candidate_priors(flipped[0], points, tumor=flipped[2], lung=flipped[1])
    assert np.allclose(first.values, second.values, equal_nan=True, atol=1e-6)
    computed = candidate_priors(flipped[0], points, tumor=flipped[2])  # lung mask computed on the flipped CT
    assert np.allclose(first.values, computed.values, equal_nan=True, atol=1e-6)


def test_missing_tumour_is_reported_not_invented(case):
    ct, lung, _, centre = case
    table = candidate_priors(ct, [centre], lung=lung)
    assert set(TUMOR_PRIORS) <= set(table.missing) and table.missing["tumor_distance_mm"] == "no tumour mask given"
    assert np.isnan(table.values[0, 3:]).all() and set(table.rows()[0]) == {"x_norm", "y_norm"}


def test_bad_geometry_is_refused(case, data_dir):
    ct, lung, tumor, centre = case
    other = sitk.ReadImage(str(data_dir / "totalsegmentator/aorta_report/celiac_trunk.nii.gz"))
    with pytest.raises(GeometryError, match="not on the CT grid"):
        candidate_priors(ct, [centre], tumor=other, lung=lung)
    with pytest.raises(GeometryError, match="outside the CT"):
        candidate_priors(ct, [centre + [0, 0, 1000.0]], tumor=tumor, lung=lung)


def test_cli_candidates(case, tmp_path, capsys):
    ct, lung, tumor, centre = case
    for name, image in (("ct", ct), ("lung", lung), ("tumor", tumor)):
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
    (tmp_path / "c.csv").write_text("id,x,y,z\n7,%f,%f,%f\n" % tuple(centre + [0, 0, 30.0]))
    assert cli(["priors", "candidates", "--ct", str(tmp_path / "ct.nii.gz"), "--lung", str(tmp_path / "lung.nii.gz"),
                "--tumor", str(tmp_path / "tumor.nii.gz"), "--candidates", str(tmp_path / "c.csv"),
                "--out", str(tmp_path / "p.csv")]) == 0
    header, row = (tmp_path / "p.csv").read_text().splitlines()
    assert header == "id," + ",".join(PRIOR_NAMES) and row.startswith("7,") and ",," in row  # z_norm empty
    assert "z_norm: not computed" in capsys.readouterr().out


def test_fit_groups_voxels_by_closest_structure():
    inf = np.inf
    d = np.array([[2.0, 9.0] + [inf] * 8, [7.5, 8.0] + [inf] * 8, [30.0, -1.0] + [inf] * 8, [30.0, 12.0] + [inf] * 8])
    profile = fit_from_distances(d)
    assert (profile.params("spleen").d_min, profile.params("spleen").d_max) == (2.0, 7.5)
    assert (profile.params("esophagus").d_min, profile.params("esophagus").d_max) == (-1.0, 12.0)
    assert profile.params("aorta").d_max == 28.0 and profile.fit["per_structure"]["aorta"]["voxels"] == 0
    robust = fit_from_distances(np.repeat(d, 50, axis=0)[:, :], percentile=10)
    assert robust.params("esophagus").d_max <= 12.0


def test_fit_command_on_a_tiny_cohort(tmp_path):
    from LNStagingLib.dataset.format import PDAC20_LABELS, write_description

    ids = ["a", "b"]
    for k, case_id in enumerate(ids):
        folder = tmp_path / "cases" / case_id
        folder.mkdir(parents=True)
        shape = (20, 40, 40)
        organs = np.zeros(shape, np.uint8)
        organs[:, 18:22, 18:22] = 8  # aorta, 2 mm voxels: a 8 mm square tube along z
        nodes = np.zeros(shape, np.uint16)
        nodes[8:12, 19:21, 26 + k: 29 + k] = 1  # node to the left of the aorta: voxel centres 10 .. 16 mm from the contour
        for name, array in (("organs", organs), ("gtv_ln", nodes), ("tumor", np.zeros(shape, np.uint8)),
                            ("ct", np.zeros(shape, np.int16)), ("pet", np.zeros(shape, np.float32))):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((2.0, 2.0, 3.0))
            sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
        (folder / "patient.json").write_text(json.dumps({"metastasis": 1}))
    write_description(tmp_path, name="tiny", case_ids=ids, organ_labels=PDAC20_LABELS, organ_mapping="pdac20",
                      folds={"a": 0, "b": 1}, test=[])
    out = tmp_path / "profile.json"
    assert cli(["priors", "fit", "--data", str(tmp_path), "--out", str(out), "--quiet"]) == 0
    profile = load_profile(out)
    assert profile.params("aorta").d_min == 10.0 and profile.params("aorta").d_max == 16.0
    assert profile.params("spleen").d_max == 16.0  # no node near the spleen: Table II kept
    assert profile.fit["cases"] == 2 and profile.fit["per_structure"]["aorta"]["voxels"] == 2 * 4 * 2 * 3
