"""map_structures counts label values with a histogram and maps them with one table lookup (uint8/uint16 maps) instead
of np.unique's sort and one np.isin pass per structure; the structure map is the same whatever the label type."""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LNStagingLib.anatomy.structures import STRUCTURES, OrganLabels, load_mapping, map_structures

SOURCE = Path(__file__).parent / "Data" / "totalsegmentator" / "example_seg_fast_force_split.nii.gz"


def _naive(array: np.ndarray, mapping) -> np.ndarray:
    values = {int(v) for v in np.unique(array) if v != 0}
    out = np.zeros(array.shape, np.uint8)
    for structure in STRUCTURES:
        hit = sorted(v for v in mapping.ids.get(structure.key, ()) if v in values)
        if hit:
            out[np.isin(array, hit)] = structure.index
    return out


def test_lookup_and_fallback_paths_give_the_naive_structure_map():
    image = sitk.ReadImage(str(SOURCE))  # real TotalSegmentator 'total' labels, stored RAS
    mapping = load_mapping("totalsegmentator")
    expected = _naive(sitk.GetArrayViewFromImage(image), mapping)
    assert len(np.unique(expected)) >= 5
    for pixel in (sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkInt32):
        organs = OrganLabels(sitk.Cast(image, pixel))
        result = map_structures(organs, mapping)
        assert np.array_equal(sitk.GetArrayViewFromImage(result.image), expected), pixel
        assert result.image.GetDirection() == image.GetDirection()
        assert sorted(result.present) == sorted(s.key for s in STRUCTURES if s.index in np.unique(expected))
