"""LNStagingTest, the module's self-test (Slicer's "Reload and Test", and the extension's ctest).

Inside Slicer only; offline: it uses the bundled demo case and demo weights, nothing is downloaded.
"""

import os

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from .demo import loadDemoCase
from .logic import LNStagingLogic

MINIMUM_SLICER = (5, 10)  # vtkSegment.SetTerminology; also declared in CMakeLists.txt (find_package(Slicer 5.10))


class LNStagingTest(ScriptedLoadableModuleTest):
    """Inside Slicer, offline: the bundled demo case -> run on CPU with the bundled demo weights -> review -> edit
    -> save -> restore -> RTSTRUCT. On a machine without the Python dependencies (the extension build machines)
    only the offline parts that need none run: catalogue, demo case loading, Sample Data registration."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_demo_case_offline()

    def test_demo_case_offline(self):
        import tempfile
        from pathlib import Path

        import numpy as np

        from LNStagingLib.scene import review, segments

        logic = LNStagingLogic()
        self.assertTrue(logic.modelIds(), "the model catalogue lists no model")
        ct, pet = loadDemoCase()
        self.assertEqual(ct.GetImageData().GetDimensions(), (160, 160, 96))  # the demo CT (its PET: 80 x 80 x 96)
        self.assertEqual(pet.GetImageData().GetDimensions(), (80, 80, 96))
        if slicer.app.majorVersion * 100 + slicer.app.minorVersion < MINIMUM_SLICER[0] * 100 + MINIMUM_SLICER[1]:
            self.fail(f"LNStaging needs Slicer {MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or later")
        missing = logic.missingDependencies()
        if missing:
            self.delayDisplay(f"Python packages not installed ({', '.join(missing)}): the run is skipped")
            return

        work = Path(tempfile.mkdtemp(prefix="LNStagingTest-"))
        shown = logic.runBlocking(ct, pet, None, "cpu", onLine=lambda line: None)  # demo weights, offline
        shown = logic.loadResults(logic.resultsFolder, ct, pet)  # a second Load replaces, never duplicates
        self.assertEqual(len(slicer.util.getNodesByClass("vtkMRMLSegmentationNode")), 1)
        self.assertEqual(shown.table.GetNumberOfRows(), len(shown.results.candidates))
        if not shown.results.candidates:
            return
        first = min(shown.results.candidates, key=lambda c: c.rank)
        shown.jump_to(first.id)
        shown.set_operating_point(threshold=0.3)
        shown.accept(first.id)
        if "demo-cls-rescore" in logic.rescoreModelIds():  # issue 19, once the demo re-scoring model is installed
            before = {c.id: c.probability for c in shown.results.candidates}
            logic.setRescoreModel("demo-cls-rescore")
            self.assertEqual(shown.results.candidate(first.id).probability, before[first.id])  # decided: unchanged
            self.assertTrue(logic.rescoringStatus().startswith("Re-scored"), logic.rescoringStatus())
            logic.setRescoreModel("")  # none: the original probabilities again
            self.assertEqual({c.id: c.probability for c in shown.results.candidates}, before)
        voxels = segments.array_from_segment(shown.segmentation, first.name, ct)
        z, y, x = np.argwhere(voxels)[0]
        grown = voxels.copy()
        grown[z, max(y - 2, 0):y + 1, x] = 1
        segments.update_segment_from_array(shown.segmentation, first.name, grown, ct)
        saved = logic.saveReview(work / "review")
        restored = logic.loadResults(saved, ct, pet)
        self.assertAlmostEqual(restored.threshold, 0.3)  # the saved operating point, not a default
        self.assertEqual(restored.results.candidate(first.id).review, "accepted")
        self.assertEqual(int(segments.array_from_segment(restored.segmentation, first.name, ct).sum()),
                         int(grown.sum()))
        marked = [n for n in slicer.util.getNodesByClass("vtkMRMLSegmentationNode")
                  if n.GetAttribute(review.ROLE_ATTRIBUTE) == "segmentation"]
        self.assertEqual(len(marked), 1)

        out = work / "rtstruct"
        ctDicom = work / "ct_dicom"
        exportCtAsDicom(ct, ctDicom)  # also puts the CT under a patient and study
        logic.export(out, str(ctDicom))  # SlicerRT when installed, else the library against ctDicom
        self.assertTrue(any(out.rglob("*.dcm")), "no RTSTRUCT was written")
        self.delayDisplay("LNStaging self-test passed")


def exportCtAsDicom(ctNode, folder):
    """Slicer's own DICOM export of a volume (placed under a new patient/study), for the self-test's export step."""
    import DICOMScalarVolumePlugin

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "LNStaging demo")
    hierarchy.SetItemAttribute(patient, "DICOM.PatientName", "LNStaging^Demo")
    hierarchy.SetItemAttribute(patient, "DICOM.PatientID", "LNSTAGING-DEMO")
    study = hierarchy.CreateStudyItem(patient, "Demo study")
    hierarchy.SetItemAttribute(study, "DICOM.StudyID", "1")
    item = hierarchy.GetItemByDataNode(ctNode)
    hierarchy.SetItemParent(item, study)
    exporter = DICOMScalarVolumePlugin.DICOMScalarVolumePluginClass()
    exportables = exporter.examineForExport(item)
    for exportable in exportables:
        exportable.directory = str(folder)
    os.makedirs(folder, exist_ok=True)
    exporter.export(exportables)
