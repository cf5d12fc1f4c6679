"""The demo case's Sample Data registration, called against a stand-in of SampleData that enforces what Slicer's
own code enforces at v5.10.0 and v5.12.3 (there is no SampleData in the slicer-core wheel). The facts are recorded
below in our words; scripts/check_slicer_source_api.py <Slicer.git> <tag> verifies them against a tag's
Modules/Scripted/SampleData/SampleData.py (parameter names via ast, the len(uris) and equal-length checks, the
duplicate check). The registration Slicer runs at every start must not raise and must name the two demo files;
without ``uris`` (as before issue 27) it raises TypeError."""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "LNStaging"

# Parameter names, in order, of SampleData's registration API at v5.10.0 and v5.12.3 (the same at both tags).
SAMPLEDATA_PARAMETERS = {
    "SampleDataLogic.registerCustomSampleDataSource": [
        "category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader", "thumbnailFileName",
        "loadFileTypes", "loadFiles", "loadFileProperties", "checksums", "loadFileType"],
    "SampleDataSource.__init__": [
        "self", "sampleName", "sampleDescription", "uris", "fileNames", "nodeNames", "checksums", "loadFiles",
        "customDownloader", "thumbnailFileName", "loadFileTypes", "loadFileProperties", "loadFileType"],
}
# SampleDataSource.__init__ evaluates len(uris) (uris=None raises TypeError), gives each of SAMPLEDATA_PER_URI left
# None one None per uri, then raises ValueError unless all of SAMPLEDATA_EQUAL_LENGTHS have the same length.
# registerCustomSampleDataSource adds nothing when isSampleDataSourceRegistered finds an equal source in the category.
SAMPLEDATA_PER_URI = ["nodeNames", "loadFiles", "loadFileTypes", "checksums"]
SAMPLEDATA_EQUAL_LENGTHS = ["uris", "fileNames", "nodeNames", "loadFiles", "loadFileTypes", "checksums"]

slicer = pytest.importorskip("slicer")


def accepting(names: list[str]) -> inspect.Signature:
    """A signature with these parameter names (defaults None): binding an unknown name raises TypeError, as a call
    of Slicer's function would."""
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
                              for n in names])


def stand_in_source(**arguments) -> types.SimpleNamespace:
    """SampleDataSource reduced to the recorded facts: known names only, len(uris), None filled per uri, equal
    lengths. Stricter than Slicer in one way: a single string uri (which Slicer wraps in a list) is not modelled."""
    names = SAMPLEDATA_PARAMETERS["SampleDataSource.__init__"][1:]
    values = {n: accepting(names).bind(**arguments).arguments.get(n) for n in names}
    count = len(values["uris"])
    values |= {n: [None] * count for n in SAMPLEDATA_PER_URI if values[n] is None}
    if len({len(values[n]) for n in SAMPLEDATA_EQUAL_LENGTHS}) != 1:
        raise ValueError("All fields of sample data source must have the same length")
    return types.SimpleNamespace(**values)


def stand_in_sample_data():
    """A SampleData module whose registerCustomSampleDataSource follows the recorded facts, and its registry."""
    registry: dict[str, list] = {}
    names = SAMPLEDATA_PARAMETERS["SampleDataLogic.registerCustomSampleDataSource"]

    def registerCustomSampleDataSource(*args, **kwargs):
        values = accepting(names).bind(*args, **kwargs).arguments
        category = values.pop("category", None) or "Custom"
        source = stand_in_source(**values)
        if source not in registry.setdefault(category, []):
            registry[category].append(source)

    module = types.ModuleType("SampleData")
    module.SampleDataLogic = types.SimpleNamespace(registerCustomSampleDataSource=registerCustomSampleDataSource)
    module.SampleDataSource = stand_in_source
    return module, registry


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.syspath_prepend(str(MODULE))
    monkeypatch.delitem(sys.modules, "LNStagingModule.demo", raising=False)
    from LNStagingModule import demo

    yield demo
    sys.modules.pop("LNStagingModule.demo", None)


def test_registration_follows_sampledata_at_the_tags(demo, monkeypatch):
    module, registry = stand_in_sample_data()
    monkeypatch.setitem(sys.modules, "SampleData", module)
    demo.registerSampleData()
    (source,) = registry["LNStaging"]
    assert source.sampleName == "LNStaging demo PET/CT (synthetic)"
    assert source.fileNames == ["ct.nii.gz", "pet.nii.gz"]
    assert [Path(uri.replace("file://", "")).is_file() for uri in source.uris] == [True, True]  # the bundled files
    assert source.customDownloader is demo.loadDemoCase
    demo.registerSampleData()  # a second start registers nothing twice
    assert len(registry["LNStaging"]) == 1


def test_the_old_call_without_uris_fails_there(demo):
    """The check can fail: the pre-issue-27 call (no uris) raises TypeError, as len(None) does in Slicer's code."""
    module, _ = stand_in_sample_data()
    arguments = demo.sampleDataArguments()
    del arguments["uris"], arguments["fileNames"], arguments["nodeNames"]
    with pytest.raises(TypeError):
        module.SampleDataLogic.registerCustomSampleDataSource(**arguments)


def test_the_stand_in_enforces_each_recorded_fact(demo):
    register = stand_in_sample_data()[0].SampleDataLogic.registerCustomSampleDataSource
    arguments = demo.sampleDataArguments()
    with pytest.raises(ValueError):  # fileNames shorter than uris
        register(**{**arguments, "fileNames": arguments["fileNames"][:1]})
    with pytest.raises(ValueError):  # a per-uri list of the wrong length
        register(**{**arguments, "checksums": [None]})
    with pytest.raises(TypeError):  # a parameter name SampleData does not have
        register(**{**arguments, "fileName": "ct.nii.gz"})
    register(**arguments)
