"""Normalised z on partial scans (anatomy/landmarks.py): fitted to whatever landmarks a scan shows, with the source
recorded; on real CTs without the lung apex, and on the demo phantom case."""

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.anatomy.body import lung_landmarks
from LNStagingLib.anatomy.landmarks import (Landmark, find_landmarks, fit_z_frame, landmark_values,
                                            vertebra_end_plates)
from LNStagingLib.anatomy.lung import lung_mask
from LNStagingLib.anatomy.structures import OrganLabels, read_organs
from LNStagingLib.priors.candidate_priors import candidate_priors

DEMO = "Resources/DemoCase/cases/case010"


@pytest.fixture(scope="module")
def aorta_report(data_dir, tmp_path_factory):
    """TotalSegmentator's aorta_report crop (1.5 mm): aortic arch to renal level, the lung apex not imaged; its
    masks (aorta, T12, arteries) as a folder, as TotalSegmentator writes them."""
    source = data_dir / "totalsegmentator/aorta_report"
    masks = tmp_path_factory.mktemp("aorta_masks")
    for path in source.glob("*.nii.gz"):
        if path.name != "ct_cropped.nii.gz":
            shutil.copy(path, masks / path.name)
    ct = sitk.ReadImage(str(source / "ct_cropped.nii.gz"))
    return ct, read_organs(masks, reference=ct), lung_mask(ct)


def test_real_crop_without_lung_apex_gets_z_from_other_landmarks(aorta_report):
    ct, organs, lung = aorta_report
    assert lung_landmarks(lung).apex_in_scan is False  # the lung-only frame would leave z missing
    centres = np.array([ct.TransformContinuousIndexToPhysicalPoint([60.0, 63.0, k]) for k in (10.0, 80.0, 150.0)])
    without = candidate_priors(ct, centres, lung=lung)
    assert "z_norm" in without.missing and np.isnan(without.values[:, 2]).all()
    values = landmark_values(organs, "totalsegmentator")
    assert set(values) == {"aorta", "T12"}
    table = candidate_priors(ct, centres, lung=lung, organs=organs.image, organ_values=values)
    assert "z_norm" not in table.missing
    assert "top of the aortic arch" in table.z_source and "lung base" in table.z_source
    z = table.values[:, 2]
    assert np.all(np.diff(z) > 0)  # higher slices, higher z_norm
    # consistency with what the scan shows: the lungs are cut at the top slice, so the apex lies above it
    top_of_scan = max(ct.TransformIndexToPhysicalPoint([0, 0, ct.GetSize()[2] - 1])[2], ct.GetOrigin()[2])
    base, apex = table.lung_extent_mm["z"]
    assert apex > top_of_scan and 150 < apex - base < 450
    # T12's upper end plate lands within 0.1 of its typical place (1/12) on the fitted scale
    t12 = [landmark for landmark in find_landmarks(lung, organs.image, values) if landmark.name.startswith("T12")]
    assert t12 and abs((t12[0].z_mm - base) / (apex - base) - vertebra_end_plates("T12")[0]) < 0.1


def test_vertebral_levels_of_a_real_abdominal_ct_fit_the_typical_positions(data_dir):
    """example_ct (3 mm, RAS): lung bases, T11-S1 from TotalSegmentator's label map. Every landmark lies within
    0.05 of its typical place on the fitted scale: the table of typical positions holds on this patient."""
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct.nii.gz"))
    organs = read_organs(data_dir / "totalsegmentator/example_seg_fast_force_split.nii.gz", reference=ct)
    landmarks = find_landmarks(lung_mask(ct), organs.image, landmark_values(organs, "totalsegmentator"))
    assert len(landmarks) >= 10 and "lung base" in [m.name for m in landmarks]
    frame = fit_z_frame(landmarks)
    assert not isinstance(frame, str)
    residuals = [frame.normalise(m.z_mm) - m.position for m in landmarks]
    assert np.max(np.abs(residuals)) < 0.05


def test_demo_case_gets_z_from_lung_base_and_liver_dome():
    ct = sitk.ReadImage(f"{DEMO}/ct.nii.gz")
    organs = OrganLabels(sitk.ReadImage(f"{DEMO}/organs.nii.gz"))
    centres = np.array([ct.TransformContinuousIndexToPhysicalPoint([80.0, 80.0, 48.0])])
    table = candidate_priors(ct, centres, organs=organs.image, organ_values=landmark_values(organs, "pdac20"))
    assert "z_norm" not in table.missing and table.z_source == "lung base, liver dome"


def test_both_lung_ends_give_the_lung_frame_exactly_and_bad_fits_are_refused():
    base, apex = Landmark("lung base", 100.0, 0.0), Landmark("lung apex", 380.0, 1.0)
    frame = fit_z_frame([base, Landmark("liver dome", 190.0, 0.25), apex])
    assert (frame.base_z, frame.apex_z) == (100.0, 380.0) and frame.source == "lung base, lung apex"
    assert "far apart" in fit_z_frame([base, Landmark("T12 upper end plate", 130.0, 1 / 12)])
    assert "lung height" in fit_z_frame([base, Landmark("liver dome", 110.0, 0.25)])
    assert "none is imaged" in fit_z_frame([])
    frame = fit_z_frame([base, Landmark("liver dome", 170.0, 0.25)])
    assert frame.apex_z == pytest.approx(380.0) and frame.normalise(170.0) == pytest.approx(0.25)


def test_landmark_organs_by_name_or_convention():
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    named = OrganLabels(image, {1: "liver.nii.gz", 2: "vertebrae_T12.nii.gz", 3: "Aorta", 4: "spleen", 5: "L1 vertebra"})
    assert landmark_values(named) == {"liver": (1,), "T12": (2,), "aorta": (3,), "L1": (5,)}
    assert landmark_values(OrganLabels(image), "pdac20") == {"liver": (6,), "aorta": (8,)}
    total = landmark_values(OrganLabels(image), "totalsegmentator")
    assert total["liver"] == (5,) and total["T12"] == (32,) and total["L1"] == (31,) and total["S1"] == (26,)
    assert total["T1"] == (43,) and total["C7"] == (44,)


def test_priors_cli_takes_organ_masks_for_z(aorta_report, data_dir, tmp_path, capsys):
    from LNStagingLib.cli import main as cli

    ct, organs, _ = aorta_report
    centre = ct.TransformContinuousIndexToPhysicalPoint([60.0, 63.0, 80.0])
    (tmp_path / "c.csv").write_text("id,x,y,z\n1,%f,%f,%f\n" % centre)
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("aorta.nii.gz", "vertebrae_T12.nii.gz"):
        shutil.copy(data_dir / "totalsegmentator/aorta_report" / name, masks / name)
    assert cli(["priors", "candidates", "--ct", str(data_dir / "totalsegmentator/aorta_report/ct_cropped.nii.gz"),
                "--candidates", str(tmp_path / "c.csv"), "--organs", str(masks), "--out", str(tmp_path / "s.csv")]) == 0
    assert "z_norm from: lung base, top of the aortic arch" in capsys.readouterr().out
    header, row = (tmp_path / "s.csv").read_text().splitlines()
    assert row.split(",")[header.split(",").index("z_norm")] != ""
