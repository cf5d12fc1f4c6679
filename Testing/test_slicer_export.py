"""The SlicerRT export call, on slicer-core with a fake SlicerRT plugin that behaves like the real one where it
matters: examineForExport offers a 'CT' exportable for a scalar volume and an 'RTSTRUCT' one for a segmentation
(DicomRtImportExportPlugin.py), and export refuses an export without the anatomical image, takes the patient tags
from the first exportable and the StudyID from the study item's 'StudyID' attribute
(vtkSlicerDicomRtImportExportModuleLogic::ExportDicomRTStudy)."""

import pytest

from scene_fixtures import case, mrml, review  # noqa: F401  (pytest fixtures)

slicer = pytest.importorskip("slicer")

from LNStagingLib.errors import ExportError  # noqa: E402
from LNStagingLib.scene import rt_export  # noqa: E402

PATIENT = {"DICOM.PatientName": "Phantom^Demo", "DICOM.PatientID": "LN-0001", "DICOM.PatientSex": "O"}
STUDY = {"DICOM.StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1", "DICOM.StudyID": "S42",
         "DICOM.StudyDate": "20260101", "DICOM.StudyDescription": "PET/CT staging"}


class FakeExportable:
    def __init__(self, item, modality):
        self.subjectHierarchyItemID = item
        self.directory = ""
        self.tags = {"Modality": modality, "SeriesDescription": "No series description"}

    def setTag(self, name, value):
        self.tags[name] = value


class FakeSlicerRtPlugin:
    """Records what LNStaging hands to SlicerRT, and what the segmentation looked like at that moment."""

    def __init__(self, scene):
        self.scene = scene
        self.exported = None

    def examineForExport(self, item):
        hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        node = hierarchy.GetItemDataNode(item)
        if node is None:
            return []
        if node.IsA("vtkMRMLSegmentationNode"):
            return [FakeExportable(item, "RTSTRUCT")]
        if node.IsA("vtkMRMLScalarVolumeNode"):
            return [FakeExportable(item, "CT")]
        return []

    def export(self, exportables):
        hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        nodes = [hierarchy.GetItemDataNode(e.subjectHierarchyItemID) for e in exportables]
        if not any(n.IsA("vtkMRMLScalarVolumeNode") for n in nodes):
            return "Must export the primary anatomical (CT/MR) image"
        study = hierarchy.GetItemAncestorAtLevel(exportables[0].subjectHierarchyItemID, "Study")
        segmentation = next(n for n in nodes if n.IsA("vtkMRMLSegmentationNode"))
        seg = segmentation.GetSegmentation()
        self.exported = {
            "kinds": [e.tags["Modality"] for e in exportables],
            "nodes": nodes,
            "first_tags": dict(exportables[0].tags),
            "directories": {e.directory for e in exportables},
            "study_id": hierarchy.GetItemAttribute(study, "StudyID"),
            "roi_names": [seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())],
            "storage": segmentation.GetStorageNode(),
        }
        return ""


def place_under_study(scene, ct_node):
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Phantom^Demo")
    for name, value in PATIENT.items():
        hierarchy.SetItemAttribute(patient, name, value)
    study = hierarchy.CreateStudyItem(patient, "PET/CT staging")
    for name, value in STUDY.items():
        hierarchy.SetItemAttribute(study, name, value)
    hierarchy.SetItemParent(rt_export.subject_item(hierarchy, ct_node), study)


def test_ct_and_accepted_segments_go_to_slicerrt_with_patient_and_study_tags(review, mrml, tmp_path):
    place_under_study(mrml.scene, review.ct)
    review.accept(1)
    review.accept(3)
    review.reject(2)  # 4 stays pending
    nodes_before = mrml.scene.GetNumberOfNodes()
    plugin = FakeSlicerRtPlugin(mrml.scene)

    names = rt_export.export_with_slicerrt(mrml.scene, review, tmp_path / "rt", plugin)

    sent = plugin.exported
    assert sent is not None, "the plugin's export was not called"
    assert sent["kinds"] == ["CT", "RTSTRUCT"]  # the CT is the primary image, first
    assert sent["nodes"][0] is review.ct
    assert sent["nodes"][1] is not review.segmentation  # a copy holding only what leaves
    assert sent["roi_names"] == names == ["GTVn_01", "GTVn_03"]  # accepted only: not pending 4, never rejected 2
    assert sent["first_tags"]["PatientName"] == "Phantom^Demo"
    assert sent["first_tags"]["PatientID"] == "LN-0001"
    assert sent["first_tags"]["StudyID"] == "S42"
    assert sent["first_tags"]["StudyInstanceUID"] == STUDY["DICOM.StudyInstanceUID"]
    assert sent["study_id"] == "S42"  # where ExportDicomRTStudy reads the StudyID
    assert sent["directories"] == {str(tmp_path / "rt")}
    assert sent["storage"] is None  # no storage reference copied from the review's node
    assert mrml.scene.GetNumberOfNodes() == nodes_before  # the temporary node is gone
    assert list(review.segmentation.GetSegmentation().GetSegmentIDs()) == ["GTVn_01", "GTVn_02", "GTVn_03", "GTVn_04"]


def test_pending_nodes_only_when_asked(review, mrml, tmp_path):
    place_under_study(mrml.scene, review.ct)
    review.accept(1)
    review.reject(2)
    assert rt_export.pending_names(review.results) == ["GTVn_03", "GTVn_04"]
    plugin = FakeSlicerRtPlugin(mrml.scene)
    names = rt_export.export_with_slicerrt(mrml.scene, review, tmp_path, plugin, include_pending=True)
    assert names == ["GTVn_01", "GTVn_03", "GTVn_04"]


def test_nothing_accepted_or_no_study_is_a_clear_error(review, mrml, tmp_path):
    plugin = FakeSlicerRtPlugin(mrml.scene)
    with pytest.raises(ExportError, match="patient and a study"):
        rt_export.export_with_slicerrt(mrml.scene, review, tmp_path, plugin)
    place_under_study(mrml.scene, review.ct)
    with pytest.raises(ExportError, match="accept"):
        rt_export.export_with_slicerrt(mrml.scene, review, tmp_path, plugin)
    assert plugin.exported is None


def test_a_fake_without_the_ct_would_be_refused_like_slicerrt(review, mrml):
    """The fake really enforces SlicerRT's rule (so the first test's pass means something)."""
    plugin = FakeSlicerRtPlugin(mrml.scene)
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.scene)
    only_segmentation = plugin.examineForExport(rt_export.subject_item(hierarchy, review.segmentation))
    assert plugin.export(only_segmentation) == "Must export the primary anatomical (CT/MR) image"


def test_review_rule_keyword_follows_the_library():
    """Accepted-only unless pending nodes are asked for, whichever keyword the library's exporter takes."""
    def new_style(labels, candidates=None, include_pending=False):
        return include_pending

    def old_style(labels, candidates=None, only_accepted=False):
        return only_accepted

    assert rt_export.review_rule_kwargs(new_style, False) == {"include_pending": False}
    assert rt_export.review_rule_kwargs(new_style, True) == {"include_pending": True}
    assert rt_export.review_rule_kwargs(old_style, False) == {"only_accepted": True}
    assert rt_export.review_rule_kwargs(old_style, True) == {"only_accepted": False}
