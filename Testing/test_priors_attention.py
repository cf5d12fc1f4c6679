"""Attention map (paper 2, eq. 1-2): trapezoid, geometry against an analytic sphere, band == naive on real
label maps, headers, orientation invariance, profiles, CLI."""

import json
import threading

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.anatomy.structures import STRUCTURE_BY_KEY, map_structures, read_organs
from LNStagingLib.cli import main as cli
from LNStagingLib.errors import AnatomyError, Cancelled
from LNStagingLib.priors.attention import attention_map, attention_map_naive, signed_distance_mm
from LNStagingLib.priors.profile import (TABLE_II, AttentionProfile, ProfileError, StructureParams, default_profile,
                                         load_profile, save_profile)
from LNStagingLib.priors.trapezoid import trapezoid
from LNStagingLib.progress import Progress


@pytest.fixture(scope="module")
def abdomen(data_dir):
    """Real TotalSegmentator abdomen label map (3 mm, direction diag(-1,-1,1)) mapped to the structures."""
    return map_structures(read_organs(data_dir / "totalsegmentator/example_seg_fast_force_split.nii.gz"),
                          "totalsegmentator").image


def test_trapezoid_is_eq1_with_table2_values():
    assert TABLE_II["pancreas"] == (-5.0, 20.0) and TABLE_II["aorta"] == (0.0, 28.0) and TABLE_II["lga"] == (0.0, 21.0)
    d = np.array([-8.0, -6.5, -5.0, 0.0, 20.0, 21.5, 23.0, 30.0])
    assert np.allclose(trapezoid(d, -5.0, 20.0), [0, 0.5, 1, 1, 1, 0.5, 0, 0])
    # the paper's piecewise formula, evaluated literally
    for x in np.linspace(-12, 30, 85):
        lo, hi = -5.0, 20.0
        want = 1 if lo <= x <= hi else (-(x - hi - 3) / 3 if hi < x < hi + 3 else ((x - lo + 3) / 3 if lo - 3 < x < lo else 0))
        assert trapezoid(x, lo, hi) == pytest.approx(want, abs=1e-6)


def _rotated_sphere(radius=12.0):
    """A sphere on an anisotropic grid whose direction is a rotation (not a permutation)."""
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    image = sitk.Image([60, 50, 24], sitk.sitkUInt8)
    image.SetSpacing((0.9, 1.1, 2.5))
    image.SetDirection(tuple(rot.ravel()))
    image.SetOrigin((-20.0, 15.0, -30.0))
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint((30.3, 24.6, 11.7)))
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in image.GetSize()], indexing="ij"), -1).reshape(-1, 3)
    world = np.asarray(image.GetOrigin()) + (idx * image.GetSpacing()) @ rot.T
    dist = np.linalg.norm(world - centre, axis=1).reshape(image.GetSize()).transpose(2, 1, 0)  # -> [z,y,x]
    mask = sitk.GetImageFromArray((dist <= radius).astype(np.uint8))
    mask.CopyInformation(image)
    return mask, dist - radius


def test_signed_distance_matches_an_analytic_sphere_within_half_a_voxel():
    mask, analytic = _rotated_sphere()
    sdf = sitk.GetArrayFromImage(signed_distance_mm(mask))
    band = (analytic > 2) & (analytic < 25)
    # Maurer measures to voxel centres of the digitised sphere: nearly always within half the coarsest voxel
    # (2.5 mm slices); at the poles the digitised cap can lie up to a slice short
    error = np.abs(sdf[band] - analytic[band])
    assert np.percentile(error, 95) <= 0.5 * 2.5 and np.median(error) < 0.6 and error.max() <= 2.5
    inside = analytic < -3
    assert (sdf[inside] < 0).all()


def test_band_limited_equals_naive_on_real_label_maps(abdomen, data_dir):
    fast = sitk.GetArrayFromImage(attention_map(abdomen))
    naive = sitk.GetArrayFromImage(attention_map_naive(abdomen))
    assert np.abs(fast - naive).max() <= 1e-4
    assert 0.01 < (fast > 0).mean() < 0.5 and fast.max() == 1.0
    vessels = map_structures(read_organs(data_dir / "totalsegmentator/aorta_report"), "totalsegmentator").image
    assert np.abs(sitk.GetArrayFromImage(attention_map(vessels))
                  - sitk.GetArrayFromImage(attention_map_naive(vessels))).max() <= 1e-4


def test_eq2_inside_a_structure_uses_its_own_score(abdomen):
    attention = sitk.GetArrayFromImage(attention_map(abdomen))
    labels = sitk.GetArrayViewFromImage(abdomen)
    pancreas = labels == STRUCTURE_BY_KEY["pancreas"].index
    depth = sitk.GetArrayFromImage(signed_distance_mm(sitk.Equal(abdomen, STRUCTURE_BY_KEY["pancreas"].index)))
    own = trapezoid(depth, *TABLE_II["pancreas"])
    assert np.allclose(attention[pancreas], own[pancreas])
    spleen = labels == STRUCTURE_BY_KEY["spleen"].index
    deep = spleen & (sitk.GetArrayFromImage(signed_distance_mm(sitk.Equal(abdomen, 1))) < -3.5)
    assert deep.any() and (attention[deep] == 0).all()  # spleen d_min = 0: its interior is not attended


def test_header_survives_and_direction_does_not_change_the_map(abdomen):
    attention = attention_map(abdomen)
    assert attention.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    assert attention.GetOrigin() == abdomen.GetOrigin() and attention.GetSpacing() == abdomen.GetSpacing()
    # the same anatomy on an identity-direction grid (flip) and a permuted, non-isotropic one
    for transform in (lambda im: sitk.DICOMOrient(im, "LPS"), lambda im: sitk.PermuteAxes(im, [2, 0, 1])):
        other = transform(abdomen)
        back = attention_map(other)
        resampled = sitk.Resample(back, attention, sitk.Transform(), sitk.sitkNearestNeighbor, -1.0)
        assert np.abs(sitk.GetArrayFromImage(resampled) - sitk.GetArrayFromImage(attention)).max() < 1e-5
    permuted = sitk.PermuteAxes(abdomen, [2, 0, 1])
    assert permuted.GetDirection() != abdomen.GetDirection()


def test_anisotropic_grid_band_equals_naive(abdomen):
    coarse = sitk.Resample(abdomen, [61, 101, 56], sitk.Transform(), sitk.sitkNearestNeighbor, abdomen.GetOrigin(),
                           (6.0, 3.0, 6.0), abdomen.GetDirection(), 0, sitk.sitkUInt8)
    assert np.abs(sitk.GetArrayFromImage(attention_map(coarse))
                  - sitk.GetArrayFromImage(attention_map_naive(coarse))).max() <= 1e-4


def test_profile_round_trip_changes_the_map(abdomen, tmp_path):
    profile = default_profile()
    profile.structures["aorta"] = StructureParams(0.0, 5.0)
    path = save_profile(profile, tmp_path / "narrow.json")
    loaded = load_profile(path)
    assert loaded.params("aorta") == StructureParams(0.0, 5.0, 3.0)
    wide = sitk.GetArrayFromImage(attention_map(abdomen))
    narrow = sitk.GetArrayFromImage(attention_map(abdomen, loaded))
    assert (narrow > 0).sum() < (wide > 0).sum()
    (tmp_path / "bad.json").write_text(json.dumps({"format": "lnstaging-attention-profile/1",
                                                   "structures": {"aorta": {"d_min": 9, "d_max": 1}}}))
    with pytest.raises(ProfileError, match="d_min <= d_max"):
        load_profile(tmp_path / "bad.json")
    with pytest.raises(ProfileError, match="no parameters for 'spleen'"):
        attention_map(abdomen, AttentionProfile("partial", {"aorta": StructureParams(0, 5)}))


def test_bad_input_and_cancel(abdomen):
    with pytest.raises(AnatomyError, match="empty"):
        attention_map(sitk.Image([5, 5, 5], sitk.sitkUInt8))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        attention_map(abdomen, progress=Progress(cancel_event=stop))
    seen = []
    attention_map(abdomen, progress=Progress(lambda f, m: seen.append(f)))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_cli_writes_the_map_with_the_header_and_reports_absent(data_dir, tmp_path, capsys):
    source = data_dir / "totalsegmentator/example_seg_fast_force_split.nii.gz"
    out = tmp_path / "attention.nii.gz"
    assert cli(["attention", "--organs", str(source), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "absent" in printed and "esophagus, sma, tc_sa, lga, cha_pha" in printed
    written, labels = sitk.ReadImage(str(out)), sitk.ReadImage(str(source))
    assert written.GetDirection() == labels.GetDirection() and written.GetSize() == labels.GetSize()
    assert np.allclose(written.GetOrigin(), labels.GetOrigin()) and np.allclose(written.GetSpacing(), labels.GetSpacing())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial files left
    # a CT on another grid as reference: refused with a clear one-line error, nothing written
    other = tmp_path / "other.nii.gz"
    code = cli(["attention", "--organs", str(source), "--reference",
                str(data_dir / "totalsegmentator/aorta_report/ct_cropped.nii.gz"), "--out", str(other), "--quiet"])
    assert code != 0 and "different grid" in capsys.readouterr().err and not other.exists()
