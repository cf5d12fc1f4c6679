"""LNStaging: find, classify and contour lymph nodes on PET/CT, then review them in 3D Slicer.

Thin on purpose: the science is LNStagingLib (installed beside this file); MRML work is LNStagingLib.scene;
the widget, logic and child-process handling are in LNStagingModule/. Research software, not for clinical use.
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule


def _libraryDir():
    """The folder holding LNStagingLib: beside this file when built or installed (CMake copies it there), the
    repository root when the module is used from a source checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (here, os.path.dirname(here)):
        if os.path.isfile(os.path.join(folder, "LNStagingLib", "__init__.py")):
            return folder
    return here


_LIBRARY_DIR = _libraryDir()
if _LIBRARY_DIR not in sys.path:
    sys.path.append(_LIBRARY_DIR)

from LNStagingModule.demo import registerSampleData  # noqa: E402
from LNStagingModule.logic import LNStagingLogic  # noqa: E402,F401  (Slicer looks these up by name)
from LNStagingModule.selftest import LNStagingTest  # noqa: E402,F401
from LNStagingModule.widget import LNStagingWidget  # noqa: E402,F401

HELP = """
Finds lymph node candidates on PET/CT, estimates the probability that each is metastatic, contours them as
GTVn segments, and lets you review them: sort by probability, jump to a node, accept or reject it (with a
re-scoring model, each decision re-scores the pending nodes through the graph), correct its contour with the
Segment Editor, save the review and export an RTSTRUCT for treatment planning.
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
        slicer.app.connect("startupCompleted()", registerSampleData)
