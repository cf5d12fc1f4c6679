"""Fixtures for the scene adapter tests on slicer-core: a prepared MRML scene and a small case on a real CT grid
whose direction is not the identity (axes permuted and flipped) and whose spacing is not isotropic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.results import Candidate, PatientResult, Results

DATA = Path(__file__).parent / "Data"
PROBABILITIES = {1: 0.92, 2: 0.61, 3: 0.34, 4: 0.08}
CENTRES_IJK = {1: (12, 20, 6), 2: (30, 14, 10), 3: (22, 36, 12), 4: (40, 30, 4)}
RADIUS_VOXELS = 3


def reference_ct() -> sitk.Image:
    """Real CT (TotalSegmentator example, RAS on disk so ITK direction diag(-1,-1,1)), cropped, axes permuted
    (x<->y) so the direction is off-diagonal, and re-spaced to a non-isotropic grid."""
    ct = sitk.ReadImage(str(DATA / "totalsegmentator" / "example_ct_sm.nii.gz"))
    ct = ct[30:80, 25:75, 5:21]
    ct = sitk.PermuteAxes(ct, [1, 0, 2])
    ct.SetSpacing((1.5, 1.2, 3.0))
    return sitk.Cast(ct, sitk.sitkInt16)


def sphere_labels(ct: sitk.Image) -> sitk.Image:
    size = ct.GetSize()
    z, y, x = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    labels = np.zeros(size[::-1], np.uint16)
    for cid, (i, j, k) in CENTRES_IJK.items():
        labels[(x - i) ** 2 + (y - j) ** 2 + ((z - k) * 2) ** 2 <= RADIUS_VOXELS**2] = cid
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    return image


def make_case() -> tuple[sitk.Image, sitk.Image, Results]:
    ct = reference_ct()
    labels = sphere_labels(ct)
    label_array = sitk.GetArrayFromImage(labels)
    pet_array = np.full(label_array.shape, 0.8, np.float32)
    for cid in CENTRES_IJK:
        pet_array[label_array == cid] = 2.0 + 3 * cid
    pet = sitk.GetImageFromArray(pet_array)
    pet.CopyInformation(ct)
    attention = sitk.GetImageFromArray((label_array > 0).astype(np.float32) * 0.7 + 0.1)
    attention.CopyInformation(ct)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    candidates = [
        Candidate(id=cid, centroid_lps=stats.GetCentroid(cid), volume_ml=stats.GetPhysicalSize(cid) / 1000,
                  short_axis_mm=5.0, suv_max=2.0 + 3 * cid, probability=p)
        for cid, p in PROBABILITIES.items()
    ]
    results = Results(gtv_ln=labels, attention=attention, candidates=candidates,
                      patient=PatientResult(metastasis_probability=0.7), provenance={"test": "scene"})
    results.rank_candidates()
    return ct, pet, results


@pytest.fixture
def mrml():
    """A fresh vtkMRMLScene with what Slicer's application would register (colours, converters, logics)."""
    from LNStagingLib.scene.setup import prepare_scene

    logics = prepare_scene()
    yield logics
    logics.scene.Clear(True)


@pytest.fixture
def case():
    return make_case()


@pytest.fixture
def review(mrml, case):
    from LNStagingLib.scene import volumes
    from LNStagingLib.scene.review import ReviewScene

    ct, pet, results = case
    ct_node = volumes.add_volume(mrml.scene, ct, "CT")
    pet_node = volumes.add_volume(mrml.scene, pet, "PET")
    froc = [(0.5, 0.8), (1.0, 0.6), (2.0, 0.4), (4.0, 0.2), (8.0, 0.05)]
    return ReviewScene.show(mrml.scene, results, ct_node, pet_node, froc=froc)


def import_module_logic(monkeypatch, scene):
    """LNStagingModule.logic as Slicer loads it: the scripted-module base class (application only) stubbed, the
    global scene ``scene``, imported afresh from LNStaging/ (the caller pops it from sys.modules when done)."""
    import sys
    import types

    import slicer

    base = types.ModuleType("slicer.ScriptedLoadableModule")
    base.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (), {"__init__": lambda self: None})
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", base)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "LNStaging"))
    monkeypatch.delitem(sys.modules, "LNStagingModule.logic", raising=False)
    from LNStagingModule import logic

    return logic
