"""Stage-2 inference on real CT (non-identity direction): batched equals per-candidate, priors order, errors."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from LNStagingLib.errors import ModelError
from LNStagingLib.inference.classification import classify_candidates, classify_candidates_naive, prior_matrix
from LNStagingLib.models.stage2 import Stage2Model, stage2_config

NAMES = ("x_norm", "y_norm", "z_norm", "tumor_distance_mm", "tumor_elevation_deg", "tumor_azimuth_deg")


@pytest.fixture(scope="module")
def case(data_dir):
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator" / "example_ct.nii.gz"))
    pet = sitk.Cast(sitk.Clamp(ct, lowerBound=0, upperBound=1000), sitk.sitkFloat32) / 100.0  # a stand-in SUV map
    rng = np.random.default_rng(0)
    index = rng.integers(10, np.array(ct.GetSize()) - 10, size=(9, 3))
    centres = np.array([ct.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in index])
    labels = sitk.Image(ct.GetSize(), sitk.sitkUInt16)
    labels.CopyInformation(ct)
    for k, i in enumerate(index[:4], start=1):  # four candidates have a 3x3x3-voxel instance mask
        for d in np.ndindex(3, 3, 3):
            labels[[int(v) for v in i + np.array(d) - 1]] = k
    return ct, pet, centres, labels, [1, 2, 3, 4, 0, 0, 0, 0, 0], rng.random((9, 6)) * 50


@pytest.mark.parametrize("head,roi", [("gnnp", "label"), ("gnnb", "sphere"), ("cnn", "label")])
def test_batched_equals_per_candidate(case, head, roi):
    ct, pet, centres, labels, ids, priors = case
    torch.manual_seed(0)
    model = Stage2Model(stage2_config("tiny", head=head, prior_names=NAMES, roi_source=roi)).eval()
    args = dict(pet=pet, label_map=labels, label_ids=ids, priors=priors)
    batched = classify_candidates(model, ct, centres, batch_size=4, exact=True, **args)
    naive = classify_candidates_naive(model, ct, centres, exact=True, **args)
    assert batched.shape == (9,) and np.all((batched > 0) & (batched < 1))
    assert np.array_equal(batched, naive)
    # The fast (oneDNN) path agrees to rounding.
    fast = classify_candidates(model, ct, centres, batch_size=4, **args)
    assert np.allclose(fast, naive, rtol=0, atol=1e-5)


def test_missing_pet_and_prior_order(case):
    ct, pet, centres, *_ = case
    model = Stage2Model(stage2_config("tiny", head="gnnp", prior_names=NAMES))
    with pytest.raises(ModelError, match="PET"):
        classify_candidates(model, ct, centres, priors=np.zeros((9, 6)))

    class Table:  # a PriorTable-like object with columns in another order
        names = NAMES[::-1]
        values = np.arange(18, dtype=float).reshape(3, 6)

    assert np.array_equal(prior_matrix(model, ct, centres[:3], Table()), Table.values[:, ::-1])


def test_ct_only_model_without_priors_needs_neither(case):
    ct, _, centres, *_ = case
    model = Stage2Model(stage2_config("tiny", head="gnnp", use_pet=False, use_priors=False))
    assert classify_candidates(model, ct, centres[:2]).shape == (2,)
    assert classify_candidates(model, ct, np.zeros((0, 3))).shape == (0,)
