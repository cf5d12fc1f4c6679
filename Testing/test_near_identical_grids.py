"""Grids that agree to within the tolerance but not exactly are the same grid everywhere: the reference's geometry is
copied onto the other image, so ITK filters that compare geometry exactly never see the difference.

Real case: the sarcoma PET converted to SUV on the CT grid and written as NIfTI (float32 header) has an origin
~1e-5 mm off the CT's DICOM origin; `lnstaging run` on that pair used to end in an ITK traceback."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.candidates.measure import measure_instances
from LNStagingLib.cli import main
from LNStagingLib.io.resample import require_same_grid, resample_to_reference, snap_to_grid

DATA = Path(__file__).parent / "Data"
CT = DATA / "ibsi_validation_sts" / "dicom" / "STS_001" / "CT" / "image"
RAW_PET = DATA / "mirp_sts_raw_pet" / "STS_001" / "FDG_PET" / "image"


@pytest.fixture(scope="module")
def suv_on_ct(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sts") / "s.nii.gz"
    assert main(["suv", str(RAW_PET), "--ct", str(CT), "--out", str(out)]) == 0
    return out


def _nudged(image: sitk.Image, mm: float) -> sitk.Image:
    moved = sitk.Image(image)
    moved.SetOrigin([o + mm for o in image.GetOrigin()])
    return moved


def test_snapped_image_keeps_its_voxels_and_takes_the_reference_geometry():
    # A real CT stored RAS (direction diag(-1, -1, 1)) and its organ label map.
    ct = sitk.ReadImage(str(DATA / "totalsegmentator" / "example_ct.nii.gz"))
    mask = sitk.ReadImage(str(DATA / "totalsegmentator" / "example_seg_fast_force_split.nii.gz"))
    assert not np.allclose(ct.GetDirection(), np.eye(3).ravel())
    near = _nudged(mask, 2e-5)
    with pytest.raises(RuntimeError, match="same physical space"):
        sitk.LabelStatisticsImageFilter().Execute(ct, near)  # what ITK does with the raw pair
    for snapped in (snap_to_grid(near, ct), require_same_grid(near, ct), resample_to_reference(near, ct, "nearest")):
        assert snapped.GetOrigin() == ct.GetOrigin() and snapped.GetDirection() == ct.GetDirection()
        assert np.array_equal(sitk.GetArrayViewFromImage(snapped), sitk.GetArrayViewFromImage(mask))
        sitk.LabelStatisticsImageFilter().Execute(ct, snapped)
    assert near.GetOrigin() != ct.GetOrigin(), "the input must not be modified"


def test_suv_on_the_ct_grid_measures_against_ct_labels(suv_on_ct):
    from LNStagingLib.io.images import read_image

    ct = read_image(CT, what="CT")
    pet = sitk.ReadImage(str(suv_on_ct))
    assert pet.GetSize() == ct.GetSize() and pet.GetOrigin() != ct.GetOrigin()  # the near-identical pair of the issue
    labels = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    labels.CopyInformation(ct)
    labels[100, 100, 30] = 1
    (candidate,) = measure_instances(labels, pet)
    assert candidate.suv_max == pytest.approx(pet[100, 100, 30], rel=1e-6)


@pytest.mark.slow
def test_run_on_the_sarcoma_pet_ct_exits_cleanly(suv_on_ct, tmp_path, capsys):
    assert main(["run", "--ct", str(CT), "--pet", str(suv_on_ct), "--out", str(tmp_path / "x"), "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    count = int(out.split(" candidates,")[0].split()[-1])
    assert count > 0 or "Skipped: Stage-1" in out, out  # candidates, or the one-line reason none exist
    assert (tmp_path / "x" / "candidates.json").is_file()


# --- One grid tolerance for every caller (io.resample.same_grid, GRID_TOLERANCE in voxels) ---------------------------

def _oblique(image: sitk.Image) -> sitk.Image:
    """The image with a real oblique direction (20 deg about z, then 10 deg about x): off-diagonal cosines."""
    rotation = sitk.VersorTransform((0.0, 0.0, 1.0), np.radians(20.0)).GetMatrix()
    tilt = sitk.VersorTransform((1.0, 0.0, 0.0), np.radians(10.0)).GetMatrix()
    direction = np.reshape(tilt, (3, 3)) @ np.reshape(rotation, (3, 3)) @ np.reshape(image.GetDirection(), (3, 3))
    out = sitk.Image(image)
    out.SetDirection(direction.ravel().tolist())
    return out


def _jittered(image: sitk.Image) -> sitk.Image:
    """Round-off of DICOM-derived geometry: float32 header values, origin 1e-4 mm off, cosines 1e-6 off."""
    out = sitk.Image(image)
    out.SetOrigin([float(np.float32(o)) + 1e-4 for o in image.GetOrigin()])
    out.SetSpacing([float(np.float32(s)) for s in image.GetSpacing()])
    out.SetDirection((np.float32(image.GetDirection()) + 1e-6 * np.array([1, -1, 1, 0, 1, -1, 1, 0, 1])).tolist())
    return out


def _half_voxel_shift(image: sitk.Image, axis: int) -> sitk.Image:
    out = sitk.Image(image)
    direction = np.reshape(image.GetDirection(), (3, 3))
    out.SetOrigin((np.array(image.GetOrigin()) + 0.5 * image.GetSpacing()[axis] * direction[:, axis]).tolist())
    return out


@pytest.fixture(scope="module", params=["ras", "oblique"])
def ct_and_labels(request):
    ct = sitk.ReadImage(str(DATA / "totalsegmentator" / "example_ct.nii.gz"))  # real CT stored RAS
    labels = sitk.ReadImage(str(DATA / "totalsegmentator" / "example_seg_fast_force_split.nii.gz"))
    if request.param == "oblique":
        ct, labels = _oblique(ct), _oblique(labels)
        assert not np.allclose(np.reshape(ct.GetDirection(), (3, 3)), np.diag(np.diag(np.reshape(ct.GetDirection(), (3, 3)))))
    assert not np.allclose(ct.GetDirection(), np.eye(3).ravel())
    return ct, labels


def test_float_jitter_is_the_same_grid_and_a_half_voxel_shift_is_not(ct_and_labels):
    from LNStagingLib.errors import GeometryError
    from LNStagingLib.io.resample import GRID_TOLERANCE, grid_offset_voxels, same_grid

    ct, labels = ct_and_labels
    jittered = _jittered(labels)
    assert jittered.GetOrigin() != ct.GetOrigin() and jittered.GetDirection() != ct.GetDirection()
    assert 0 < grid_offset_voxels(jittered, ct) < GRID_TOLERANCE
    assert same_grid(jittered, ct)
    snapped = require_same_grid(jittered, ct)
    assert snapped.GetOrigin() == ct.GetOrigin() and snapped.GetDirection() == ct.GetDirection()
    for axis in range(3):
        shifted = _half_voxel_shift(labels, axis)
        assert grid_offset_voxels(shifted, ct) == pytest.approx(0.5)
        assert not same_grid(shifted, ct)
        with pytest.raises(GeometryError, match="not on the CT grid"):
            require_same_grid(shifted, ct)
    # Spacing off by 1/244 of a voxel: 0 at the origin, half a voxel at the far corner of the 122-voxel axis.
    stretched = sitk.Image(labels)
    stretched.SetSpacing([s * (1 + 0.5 / (n - 1)) if i == 0 else s
                          for i, (s, n) in enumerate(zip(labels.GetSpacing(), labels.GetSize()))])
    assert grid_offset_voxels(stretched, ct) == pytest.approx(0.5) and not same_grid(stretched, ct)


def test_export_and_dataset_callers_use_the_same_tolerance(ct_and_labels, tmp_path):
    from LNStagingLib.dataset.format import CaseFiles
    from LNStagingLib.errors import GeometryError
    from LNStagingLib.export.rois import labels_on_ct_grid

    ct, labels = ct_and_labels
    expected = sitk.GetArrayFromImage(labels)
    assert np.array_equal(labels_on_ct_grid(_jittered(labels), ct), expected)
    with pytest.raises(GeometryError, match="not on the CT series grid.*nearest-neighbour.*--resample"):
        labels_on_ct_grid(_half_voxel_shift(labels, 2), ct)

    case = CaseFiles("case001", tmp_path)
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    pet = sitk.Cast(labels, sitk.sitkFloat32)
    sitk.WriteImage(_jittered(pet), str(tmp_path / "pet.nii.gz"))
    loaded = case.load("pet")  # the jittered PET is the CT's grid: voxels untouched, CT geometry
    written_ct = case.load("ct")
    assert loaded.GetOrigin() == written_ct.GetOrigin() and loaded.GetDirection() == written_ct.GetDirection()
    assert np.array_equal(sitk.GetArrayViewFromImage(loaded), expected)
    sitk.WriteImage(_half_voxel_shift(pet, 0), str(tmp_path / "pet.nii.gz"))
    shifted = case.load("pet")
    assert not np.array_equal(sitk.GetArrayViewFromImage(shifted), expected)  # resampled, not relabelled
