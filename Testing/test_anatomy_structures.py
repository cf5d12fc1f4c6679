"""Mapping organ label maps of several conventions onto the 10 structures of the attention model (real data)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.anatomy.structures import (STRUCTURE_BY_KEY, load_mapping, map_structures, normalise_name,
                                             read_organs)
from LNStagingLib.errors import AnatomyError, GeometryError


@pytest.fixture(scope="module")
def ts(data_dir):
    return data_dir / "totalsegmentator"


def _labels(array, like=None):
    image = sitk.GetImageFromArray(np.asarray(array))
    if like is not None:
        image.CopyInformation(like)
    return image


def test_totalsegmentator_label_map_by_ids(ts):
    organs = read_organs(ts / "example_seg_fast_force_split.nii.gz")
    result = map_structures(organs, "totalsegmentator")
    assert result.present == ["spleen", "stomach", "aorta", "pancreas", "duodenum"]
    assert result.absent == ["esophagus", "sma", "tc_sa", "lga", "cha_pha"]
    assert result.sources == {"spleen": [1], "stomach": [6], "aorta": [52], "pancreas": [7], "duodenum": [19]}
    source = sitk.GetArrayViewFromImage(organs.image)
    out = sitk.GetArrayViewFromImage(result.image)
    assert np.array_equal(out == STRUCTURE_BY_KEY["aorta"].index, source == 52)
    assert result.image.GetDirection() == organs.image.GetDirection()  # diag(-1,-1,1) kept


def test_folder_of_masks_celiac_and_sma_by_name(ts):
    organs = read_organs(ts / "aorta_report")  # also holds ct_cropped.nii.gz, which is not a mask: skipped
    assert "ct_cropped.nii.gz" not in organs.names.values()
    result = map_structures(organs, "totalsegmentator")
    assert result.present == ["aorta", "sma", "tc_sa"]
    out = sitk.GetArrayViewFromImage(result.image)
    def mask(name):
        return sitk.GetArrayFromImage(sitk.ReadImage(str(ts / "aorta_report" / name))) != 0

    celiac = mask("celiac_trunk.nii.gz")
    later = np.zeros_like(celiac)
    for name in ("common_carotid_artery_left.nii.gz", "subclavian_artery_left.nii.gz",
                 "superior_mesenteric_artery.nii.gz", "vertebrae_T12.nii.gz"):
        later |= mask(name)  # files after celiac_trunk (alphabetical) win where masks overlap
    assert celiac.sum() == 644
    assert np.array_equal(out == STRUCTURE_BY_KEY["tc_sa"].index, celiac & ~later)


def test_folder_with_mask_on_another_grid_is_refused_or_resampled(ts):
    with pytest.raises(GeometryError, match="different grid"):
        read_organs(ts / "pulmonary_report")
    ct = sitk.ReadImage(str(ts / "pulmonary_report/ct_cropped.nii.gz"))
    organs = read_organs(ts / "pulmonary_report", reference=ct, resample=True)
    assert organs.image.GetSize() == ct.GetSize()
    heart_value = [v for v, n in organs.names.items() if n == "heart.nii.gz"][0]
    heart = sitk.ReadImage(str(ts / "pulmonary_report/heart.nii.gz"))
    resampled = sitk.Resample(heart, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    artery = sitk.GetArrayFromImage(sitk.ReadImage(str(ts / "pulmonary_report/pulmonary_artery.nii.gz"))) != 0
    expected = (sitk.GetArrayViewFromImage(resampled) != 0) & ~artery  # the later file wins overlaps
    assert np.array_equal(sitk.GetArrayViewFromImage(organs.image) == heart_value, expected)
    assert expected.sum() > 100000
    with pytest.raises(AnatomyError, match="None of the 10 structures"):
        map_structures(organs, "totalsegmentator")  # heart and pulmonary artery are not attention structures


def test_pdac20_tumour_joins_pancreas_and_unknown_values_fail(ts):
    like = sitk.ReadImage(str(ts / "aorta_report/celiac_trunk.nii.gz"))
    array = np.zeros(sitk.GetArrayViewFromImage(like).shape, np.uint8)
    array[10:20, 10:20, 10:20] = 11
    array[20:25, 10:20, 10:20] = 19
    array[40:50, 40:50, 40:50] = 17
    result = map_structures(_labels(array, like), "pdac20")
    out = sitk.GetArrayViewFromImage(result.image)
    assert (out == STRUCTURE_BY_KEY["pancreas"].index).sum() == 1000 + 500
    assert result.sources["pancreas"] == [11, 19] and result.present == ["pancreas", "tc_sa"]
    array[0, 0, 0] = 42
    with pytest.raises(AnatomyError, match=r"\[42\].*pdac20"):
        map_structures(_labels(array, like), "pdac20")


def test_empty_label_map_is_a_clear_error():
    with pytest.raises(AnatomyError, match="empty"):
        map_structures(_labels(np.zeros((4, 5, 6), np.uint8)), "pdac20")


def test_slicer_names_case_insensitive_from_seg_nrrd(tmp_path):
    array = np.zeros((8, 9, 10), np.uint8)
    array[1:3, 1:3, 1:3] = 1
    array[5:7, 5:7, 5:7] = 2
    array[4, 4, 4] = 3
    image = _labels(array)
    image.SetSpacing((0.8, 0.8, 2.0))
    for i, (name, value) in enumerate([("Superior Mesenteric Artery", 1), ("Coeliac_Trunk", 2), ("Liver", 3)]):
        image.SetMetaData(f"Segment{i}_Name", name)
        image.SetMetaData(f"Segment{i}_LabelValue", str(value))
        image.SetMetaData(f"Segment{i}_Layer", "0")
    path = tmp_path / "organs.seg.nrrd"
    sitk.WriteImage(image, str(path))
    organs = read_organs(path)
    assert organs.names == {1: "Superior Mesenteric Artery", 2: "Coeliac_Trunk", 3: "Liver"}
    result = map_structures(organs, "slicer")
    assert result.present == ["sma", "tc_sa"]
    with pytest.raises(AnatomyError, match="segment names"):
        map_structures(_labels(array), "slicer")


def test_user_json_mapping(tmp_path):
    array = np.zeros((6, 6, 6), np.uint8)
    array[1:3, 1:3, 1:3] = 7
    array[4, 4, 4] = 9
    path = tmp_path / "site.json"
    path.write_text(json.dumps({"structures": {"esophagus": [7], "aorta": ["aorta"]}, "labels": {"7": "oes", "9": "aorta"}}))
    result = map_structures(read_organs_from(array, {9: "Aorta"}), str(path))
    assert result.present == ["esophagus", "aorta"]
    array[0, 0, 0] = 3
    with pytest.raises(AnatomyError, match=r"\[3\]"):
        map_structures(read_organs_from(array, {9: "Aorta"}), str(path))
    path.write_text(json.dumps({"structures": {"liver": [1]}}))
    with pytest.raises(AnatomyError, match="Unknown structure 'liver'"):
        load_mapping(str(path))
    with pytest.raises(AnatomyError, match="neither a built-in"):
        load_mapping("no_such_mapping")
    assert load_mapping({"spleen": [1]}).ids["spleen"] == (1,)  # dataset.json short form


def read_organs_from(array, names):
    from LNStagingLib.anatomy.structures import OrganLabels

    return OrganLabels(_labels(array.copy()), names)


def test_normalise_name():
    assert normalise_name("Superior_Mesenteric-Artery.nii.gz") == "superior mesenteric artery"
