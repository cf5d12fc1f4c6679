"""The bundled synthetic demo patient (Resources/DemoCase, beside LNStagingLib): loaded from the extension's own
files (offline, no download), and offered in the Sample Data module. Not patient data."""

import json
import os

import slicer

from .process import LIBRARY_DIR

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demoCaseDir():
    """The bundled synthetic demo patient (Resources/DemoCase, beside LNStagingLib): offline, not patient data."""
    root = os.path.join(str(LIBRARY_DIR), "Resources", "DemoCase")
    with open(os.path.join(root, "dataset.json")) as fh:
        return os.path.join(root, "cases", json.load(fh)["cases"][0])


def loadDemoCase(source=None):
    """Load the demo CT and PET (SUV) into the scene; returns (ct, pet). Also the Sample Data loader."""
    folder = demoCaseDir()
    ct = slicer.util.loadVolume(os.path.join(folder, "ct.nii.gz"), {"name": "LNStaging demo CT"})
    pet = slicer.util.loadVolume(os.path.join(folder, "pet.nii.gz"), {"name": "LNStaging demo PET (SUV)"})
    return ct, pet


def registerSampleData():
    """The demo case in the Sample Data module (loaded from the extension's own files: no download)."""
    try:
        import SampleData
    except ImportError:
        return
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="LNStaging", sampleName="LNStaging demo PET/CT (synthetic)",
        thumbnailFileName=os.path.join(MODULE_DIR, "Resources", "Icons", "LNStaging.png"),
        customDownloader=loadDemoCase)
