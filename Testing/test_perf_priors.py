"""The tumour distance prior is computed on a box around the tumour and the candidates: same as on the whole CT."""

import numpy as np
import SimpleITK as sitk

from LNStagingLib.anatomy.body import world_points
from LNStagingLib.priors.attention import signed_distance_mm
from LNStagingLib.priors.candidate_priors import PRIOR_NAMES, candidate_priors


def test_tumour_distance_on_the_box_equals_the_whole_ct(data_dir):
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct.nii.gz"))  # direction diag(-1,-1,1), 3 mm
    shape = sitk.GetArrayViewFromImage(ct).shape
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint((60.0, 50.0, 95.0)))
    scale = np.array([1.0, 1.6, 0.7])  # an ellipsoid, not a sphere
    dist = np.linalg.norm((world_points(ct, np.argwhere(np.ones(shape, bool))) - centre) / scale, axis=1)
    tumor = sitk.GetImageFromArray((dist.reshape(shape) <= 12.0).astype(np.uint8))
    tumor.CopyInformation(ct)
    corner = np.array(ct.TransformContinuousIndexToPhysicalPoint((0.2, 100.3, 0.4)))  # at the image's edge
    points = np.vstack([centre + [[0, 0, 40.0], [-70.0, 25.0, -60.0], [3.0, 2.0, 1.0]], corner])
    lung = sitk.Cast(tumor == 0, sitk.sitkUInt8)  # any mask on the grid: only the tumour columns are compared
    table = candidate_priors(ct, points, tumor=tumor, lung=lung)
    whole = signed_distance_mm(tumor)
    expected = [max(whole.EvaluateAtPhysicalPoint(tuple(p), sitk.sitkLinear), 0.0) for p in points]
    got = table.values[:, PRIOR_NAMES.index("tumor_distance_mm")]
    assert expected[2] == 0.0 and min(expected[:2] + expected[3:]) > 10.0
    assert np.abs(got - expected).max() < 1e-4  # mm: float32 rounding of the Maurer distances
