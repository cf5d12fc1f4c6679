"""The bundled synthetic demo patient (Resources/DemoCase, beside LNStagingLib): loaded from the extension's own
files (offline, no download), and offered in the Sample Data module. Not patient data."""

import json
import logging
import os
from pathlib import Path

import slicer

from .process import LIBRARY_DIR

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demoCaseDir():
    """The bundled synthetic demo patient (Resources/DemoCase, beside LNStagingLib): offline, not patient data."""
    root = os.path.join(str(LIBRARY_DIR), "Resources", "DemoCase")
    with open(os.path.join(root, "dataset.json")) as fh:
        return os.path.join(root, "cases", json.load(fh)["cases"][0])


DEMO_FILES = ("ct.nii.gz", "pet.nii.gz")
DEMO_NODE_NAMES = ("LNStaging demo CT", "LNStaging demo PET (SUV)")


def loadDemoCase(source=None):
    """Load the demo CT and PET (SUV) into the scene; returns (ct, pet). Also the Sample Data loader (it is called
    with the SampleDataSource)."""
    folder = demoCaseDir()
    ct, pet = (slicer.util.loadVolume(os.path.join(folder, file), {"name": name})
               for file, name in zip(DEMO_FILES, DEMO_NODE_NAMES))
    return ct, pet


def sampleDataArguments() -> dict:
    """registerCustomSampleDataSource's arguments: ``uris``, ``fileNames`` and ``nodeNames`` as lists of the same
    length, as SampleDataSource requires at v5.10.0 and v5.12.3 (it evaluates len(uris): None fails at every start).
    The URIs are the extension's own files; the custom loader reads them directly (no download)."""
    folder = demoCaseDir()
    return dict(category="LNStaging", sampleName="LNStaging demo PET/CT (synthetic)",
                uris=[Path(folder, file).as_uri() for file in DEMO_FILES], fileNames=list(DEMO_FILES),
                nodeNames=list(DEMO_NODE_NAMES),
                thumbnailFileName=os.path.join(MODULE_DIR, "Resources", "Icons", "LNStaging.png"),
                customDownloader=loadDemoCase)


def registerSampleData():
    """The demo case in the Sample Data module. Runs at every Slicer start: it must never raise."""
    try:
        import SampleData
    except ImportError:
        return
    try:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**sampleDataArguments())
    except (OSError, KeyError, ValueError, TypeError) as error:
        logging.warning(f"LNStaging: the demo case is not offered in Sample Data ({error})")
