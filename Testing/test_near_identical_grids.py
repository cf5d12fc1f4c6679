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
