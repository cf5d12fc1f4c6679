"""LNStaging: find, classify and contour lymph nodes on PET/CT, then review them in 3D Slicer.

Thin on purpose: the science is LNStagingLib (installed beside this file); MRML work is LNStagingLib.scene;
the widget, logic and child-process handling are in LNStagingModule/. Research software, not for clinical use.
"""

import os
import sys

from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

_SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_SOURCE_TREE, "LNStagingLib")) and _SOURCE_TREE not in sys.path:
    sys.path.append(_SOURCE_TREE)  # module used from a source checkout: LNStagingLib is in the repository root

from LNStagingModule.logic import LNStagingLogic  # noqa: F401  (Slicer looks these up by name)
from LNStagingModule.widget import LNStagingWidget  # noqa: F401

HELP = """
Finds lymph node candidates on PET/CT, estimates the probability that each is metastatic, contours them as
GTVn segments, and lets you review them: sort by probability, jump to a node, accept or reject it, correct its
contour with the Segment Editor, save the review and export an RTSTRUCT for treatment planning.
<br><br><b>Research software: not for clinical use until validated.</b>
See <a href="https://github.com/lnstaging/LNStaging/blob/main/docs/SLICER.md">docs/SLICER.md</a>.
"""

ACKNOWLEDGEMENT = """
Built on 3D Slicer, SlicerRT and the PyTorch extension, SimpleITK, MONAI and PyTorch Geometric. Methods after
the attention-guided lymph node segmentation and the graph-based lymph node classification papers cited in
docs/ARCHITECTURE.md.
"""


class LNStaging(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "LNStaging"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["The LNStaging contributors"]
        self.parent.helpText = HELP
        self.parent.acknowledgementText = ACKNOWLEDGEMENT


class LNStagingTest(ScriptedLoadableModuleTest):
    """Inside Slicer only: phantom case -> run on CPU -> review -> edit -> save -> export.

    Needs the dependencies installed and a model in Resources/Models.json (the demo weights).
    """

    def setUp(self):
        import slicer

        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_load_run_review_edit_export()

    def test_load_run_review_edit_export(self):
        import json
        import subprocess
        import tempfile
        from pathlib import Path

        import numpy as np
        import slicer

        from LNStagingLib.scene import segments
        from LNStagingModule import process
        from LNStagingModule.logic import python_slicer

        logic = LNStagingLogic()
        self.assertFalse(logic.missingDependencies(), "install the dependencies first (Apply asks for them)")
        work = Path(tempfile.mkdtemp(prefix="LNStagingTest-"))
        subprocess.run(process.phantom_argv(python_slicer(), work / "phantom"), check=True,
                       env=process.child_environment())
        case = sorted(p for p in (work / "phantom").iterdir() if (p / "ct.nii.gz").is_file())[0]
        ct = slicer.util.loadVolume(str(case / "ct.nii.gz"))
        pet = slicer.util.loadVolume(str(case / "pet.nii.gz"))
        self.delayDisplay("Phantom loaded; running on CPU")

        folder = logic.runBlocking(ct, pet, None, "cpu", onLine=lambda line: None)  # the catalogue's defaults
        review = logic.loadResults(folder, ct, pet)
        self.assertEqual(review.table.GetNumberOfRows(), len(review.results.candidates))
        self.delayDisplay(f"{len(review.results.candidates)} candidates")
        if not review.results.candidates:
            return

        first = min(review.results.candidates, key=lambda c: c.rank)
        review.jump_to(first.id)
        review.set_operating_point(threshold=0.0)
        review.accept(first.id)
        voxels = segments.array_from_segment(review.segmentation, first.name, ct)
        before = int(voxels.sum())
        z, y, x = np.argwhere(voxels)[0]
        grown = voxels.copy()
        grown[z, max(y - 2, 0):y + 1, x] = 1
        segments.update_segment_from_array(review.segmentation, first.name, grown, ct)
        logic.saveReview(work / "review")  # reads the edit back into Results first
        saved = json.loads((work / "review" / "review.json").read_text())
        self.assertEqual(saved["decisions"][str(first.id)], "accepted")
        import SimpleITK as sitk

        labels = sitk.GetArrayViewFromImage(review.results.gtv_ln)
        self.assertEqual(int((labels == first.id).sum()), int(grown.sum()))
        self.assertGreaterEqual(int(grown.sum()), before)

        self.delayDisplay("Exporting the CT as DICOM, then the reviewed nodes as RTSTRUCT")
        ctDicom = work / "ct_dicom"
        exportCtAsDicom(ct, ctDicom)
        out = work / "rtstruct"
        out.mkdir()
        logic.export(out, str(ctDicom))
        self.assertTrue(any(out.rglob("*.dcm")), "no RTSTRUCT was written")
        self.delayDisplay("LNStaging self-test passed")


def exportCtAsDicom(ctNode, folder):
    """Slicer's own DICOM export of a volume (placed under a new patient/study), for the self-test's export step."""
    import DICOMScalarVolumePlugin
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "LNStaging phantom")
    study = hierarchy.CreateStudyItem(patient, "Phantom study")
    item = hierarchy.GetItemByDataNode(ctNode)
    hierarchy.SetItemParent(item, study)
    exporter = DICOMScalarVolumePlugin.DICOMScalarVolumePluginClass()
    exportables = exporter.examineForExport(item)
    for exportable in exportables:
        exportable.directory = str(folder)
    os.makedirs(folder, exist_ok=True)
    exporter.export(exportables)
