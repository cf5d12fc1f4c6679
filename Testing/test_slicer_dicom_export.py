"""Issue 27's "done when": a real DICOM CT loaded into a slicer-core scene as Slicer's DICOM module loads it
(slicer_dicom.py says what is emulated: slicer-core has no ctkDICOMDatabase), results shown on it by the module's
logic, and Export writes an RTSTRUCT that references the original CT files: the same Series, SOP Instance, Study and
Frame of Reference UIDs (read back with pydicom), ROIs that rt-utils rasterises back with Dice >= 0.95. Also the PET
converted to SUV from its DICOM files by the module, and the Frame of Reference check between CT and PET."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from export_roundtrip import ball_labels, dice, rtutils_masks, sitk_ct  # noqa: E402
from slicer_dicom import DicomIndex, load_like_dicom_module  # noqa: E402
from test_slicer_flows import module  # noqa: E402,F401  (pytest fixture: the module's logic on the scene)
from scene_fixtures import mrml  # noqa: E402,F401  (pytest fixture)

from LNStagingLib.errors import LNStagingError  # noqa: E402
from LNStagingLib.results import Candidate, Results  # noqa: E402
from LNStagingLib.scene import volumes  # noqa: E402

DATA = Path(__file__).parent / "Data"
IBSI_CT = DATA / "ibsi_validation_sts" / "dicom" / "STS_001" / "CT" / "image"
RAW_PET = DATA / "mirp_sts_raw_pet" / "STS_001" / "FDG_PET" / "image"
OTHER_CT = DATA / "ibsi_validation_sts" / "dicom" / "STS_002" / "CT" / "image"  # another patient and Frame of Reference
SUV_FACTOR = 2.4290298e-4  # g/Bq for this PET (Testing/Data/SOURCES.md: reproduces the IBSI SUV volume)
MIN_DICE = 0.95


def results_on(ct_node, folder: Path) -> Path:
    """A run's results on the loaded CT: four 6 mm balls inside rt-utils' usable 198 x 198 square."""
    image = volumes.image_from_volume(ct_node)
    nodes = [(cid, image.TransformContinuousIndexToPhysicalPoint(ijk), 6.0, 0.0)
             for cid, ijk in ((1, (50.0, 60.0, 20.0)), (2, (120.0, 70.0, 25.0)), (3, (90.0, 140.0, 30.0)),
                              (4, (150.0, 150.0, 36.0)))]
    labels = sitk.GetImageFromArray(ball_labels(image, nodes))
    labels.CopyInformation(image)
    candidates = [Candidate(cid, tuple(centre), probability=p) for (cid, centre, _, _), p in
                  zip(nodes, (0.9, 0.7, 0.5, 0.3))]
    Results(gtv_ln=labels, candidates=candidates).write(folder)
    return folder


def test_export_from_the_logic_references_the_original_ct_files(module, mrml, tmp_path, monkeypatch):  # noqa: F811
    scene = mrml.scene
    ct_node = load_like_dicom_module(scene, IBSI_CT, "CT")
    monkeypatch.setattr(slicer, "dicomDatabase", DicomIndex(IBSI_CT), raising=False)
    logic = module.logic.LNStagingLogic()
    review = logic.loadResults(results_on(ct_node, tmp_path / "run"), ct_node)
    review.accept(1)
    review.accept(3)
    review.reject(2)  # 4 stays pending
    assert logic.exportRoute() == "dicom"
    nodes_before = scene.GetNumberOfNodes()

    message = logic.export(tmp_path / "rt")

    assert scene.GetNumberOfNodes() == nodes_before  # no colour table or label map left behind
    rtstruct = tmp_path / "rt" / "RS_LNStaging.dcm"
    assert str(rtstruct) in message and "2 structure(s): GTVn_01, GTVn_03" in message
    ct_headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(IBSI_CT.iterdir())]
    ct_sops = {str(h.SOPInstanceUID) for h in ct_headers}
    ds = pydicom.dcmread(rtstruct)
    assert ds.Modality == "RTSTRUCT"
    assert ds.StudyInstanceUID == ct_headers[0].StudyInstanceUID
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ct_headers[0].FrameOfReferenceUID
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct_headers[0].SeriesInstanceUID
    listed = {str(item.ReferencedSOPInstanceUID) for item in series.ContourImageSequence}
    assert listed == ct_sops  # every slice of the planning CT, and only those
    contour_sops = {str(image.ReferencedSOPInstanceUID) for roi in ds.ROIContourSequence
                    for contour in roi.ContourSequence for image in contour.ContourImageSequence}
    assert contour_sops and contour_sops <= ct_sops
    assert {r.ReferencedFrameOfReferenceUID for r in ds.StructureSetROISequence} == {frame.FrameOfReferenceUID}

    _, uids = sitk_ct(IBSI_CT)
    masks = rtutils_masks(IBSI_CT, rtstruct, uids)  # rt-utils' own reading and rasterising
    labels = sitk.GetArrayFromImage(review.results.gtv_ln)  # on the node's grid: the series' slice order
    assert sorted(masks) == ["GTVn_01", "GTVn_03"]  # rejected 2 and pending 4 never leave
    for name, cid in (("GTVn_01", 1), ("GTVn_03", 3)):
        score = dice(masks[name], labels == cid)
        assert score >= MIN_DICE, (name, score)


def test_the_pet_from_dicom_is_converted_to_suv_by_the_module(module, mrml, monkeypatch):  # noqa: F811
    """Slicer loads DICOM PET in Bq/ml: the module converts it with the library's SUV code from the series' files."""
    pet_node = load_like_dicom_module(mrml.scene, RAW_PET, "PET")
    monkeypatch.setattr(slicer, "dicomDatabase", DicomIndex(RAW_PET), raising=False)
    logic = module.logic.LNStagingLogic()
    suv = logic.petSuvImage(pet_node)
    raw = volumes.array_from_volume(pet_node)
    assert np.allclose(sitk.GetArrayViewFromImage(suv), raw * SUV_FACTOR, rtol=1e-5, atol=1e-4)
    assert float(sitk.GetArrayViewFromImage(suv).max()) == pytest.approx(66.5, abs=0.05)  # SOURCES.md: SUVmax 66.5
    assert any("SUV" in note for note in logic.notes)
    shown = logic.suvPetNode(pet_node)  # what Apply analyses and the review shows: an SUV copy, made once
    assert shown is not pet_node and shown.GetName() == "PET (SUVbw)"
    assert np.array_equal(volumes.array_from_volume(shown), sitk.GetArrayViewFromImage(suv))
    count = mrml.scene.GetNumberOfNodes()
    assert logic.suvPetNode(pet_node) is shown and logic.suvPetNode(shown) is shown
    assert mrml.scene.GetNumberOfNodes() == count


def test_a_pet_not_from_dicom_is_taken_as_it_is_and_said_so(module, mrml):  # noqa: F811
    pet = sitk.Image(8, 8, 4, sitk.sitkFloat32) + 2.0
    pet_node = volumes.add_volume(mrml.scene, pet, "PET file")
    logic = module.logic.LNStagingLogic()
    assert float(sitk.GetArrayFromImage(logic.petSuvImage(pet_node)).max()) == 2.0
    assert "taken as SUV" in logic.notes[0]


def test_ct_and_pet_from_dicom_with_other_frames_of_reference_are_refused_unless_registered(module, mrml):  # noqa: F811
    ct_node = load_like_dicom_module(mrml.scene, IBSI_CT, "CT")
    same = load_like_dicom_module(mrml.scene, RAW_PET, "PET")
    other = load_like_dicom_module(mrml.scene, OTHER_CT, "another patient")
    logic = module.logic.LNStagingLogic()
    logic.checkFramesOfReference(ct_node, same)  # one Frame of Reference: accepted
    with pytest.raises(LNStagingError, match="different DICOM Frames of Reference"):
        logic.checkFramesOfReference(ct_node, other)
    registration = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    other.SetAndObserveTransformNodeID(registration.GetID())
    logic.checkFramesOfReference(ct_node, other)  # registered by the user: accepted


def test_export_reports_progress_and_a_cancel_leaves_no_file(module, mrml, tmp_path, monkeypatch):  # noqa: F811
    """The widget draws the library's Progress in a dialog whose Cancel button cancels the writer."""
    from LNStagingLib.errors import Cancelled
    from LNStagingLib.progress import Progress

    ct_node = load_like_dicom_module(mrml.scene, IBSI_CT, "CT")
    monkeypatch.setattr(slicer, "dicomDatabase", DicomIndex(IBSI_CT), raising=False)
    logic = module.logic.LNStagingLogic()
    review = logic.loadResults(results_on(ct_node, tmp_path / "run"), ct_node)
    review.accept(1)
    steps = []
    logic.export(tmp_path / "rt", progress=Progress(lambda fraction, message: steps.append(fraction)))
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps) and len(steps) > 3
    cancelling = Progress()
    cancelling.callback = lambda fraction, message: cancelling.cancel() if fraction > 0.2 else None
    with pytest.raises(Cancelled):
        logic.export(tmp_path / "cancelled", progress=cancelling)
    leftovers = list((tmp_path / "cancelled").rglob("*")) if (tmp_path / "cancelled").exists() else []
    assert leftovers == []  # nothing half-written
