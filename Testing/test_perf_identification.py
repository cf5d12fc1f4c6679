"""The pipeline runs the instance identifier on the crop around the instances: the same scores as on the whole CT."""

import numpy as np
import SimpleITK as sitk
import torch

from LNStagingLib.models.identification import InstanceIdentifier, identifier_config, identify_instances
from LNStagingLib.models.seg_inputs import network_channels
from LNStagingLib.models.unet import unet_config
from LNStagingLib.pipeline import _instances_box


def test_identifier_scores_on_the_crop_equal_the_whole_ct(data_dir):
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct.nii.gz"))  # direction diag(-1,-1,1), 3 mm
    pet = sitk.Cast(sitk.Abs(ct) * 0.01, sitk.sitkFloat32)
    array = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint16)
    array[50:54, 40:45, 60:63] = 1  # inside
    array[0:3, 2:5, 100:104] = 2  # at the image's corner: the patch is cut by the border on both sides
    array[60:62, 98:101, 5:8] = 3
    labels = sitk.GetImageFromArray(array)
    labels.CopyInformation(ct)
    torch.manual_seed(2)
    model = InstanceIdentifier(identifier_config(unet_config("tiny", use_pet=True))).eval()
    box = _instances_box(labels, model.config.id_patch_size)
    assert sitk.GetArrayViewFromImage(labels[box]).size < array.size  # something is cropped
    whole = identify_instances(model, network_channels(model.config, ct, pet), array)
    crop = identify_instances(model, network_channels(model.config, ct[box], pet[box]),
                              sitk.GetArrayFromImage(labels[box]))
    assert sorted(whole) == [1, 2, 3] and whole == crop
