"""Model catalogue: schema validation, sha256 refusal, cache folder and offline import (no downloads)."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from LNStagingLib.errors import ModelError
from LNStagingLib.models import catalogue as cat
from LNStagingLib.models.checkpoint import register_model, save_checkpoint, sha256_of

REPO = Path(__file__).resolve().parents[1]


@dataclass
class _TinyConfig:
    width: int = 3


@register_model("test_catalogue_tiny", _TinyConfig)
class _Tiny(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.linear = torch.nn.Linear(config.width, 1)


def _entry(**overrides):
    entry = {"id": "demo-patient", "version": "1", "task": "patient", "file": "weights/demo.pt", "sha256": "0" * 64,
             "inputs": ["ct", "tumor", "ln_volume"], "training_data": {"name": "phantom", "cases": 4},
             "model_card": "weights/demo.md", "metrics": {}}
    entry.update(overrides)
    return entry


def _write_catalogue(folder: Path, entries) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Models.schema.json").write_text((REPO / "Resources" / "Models.schema.json").read_text())
    path = folder / "Models.json"
    path.write_text(json.dumps({"format": "lnstaging-models/1", "models": entries}))
    return path


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "made" / "demo.pt"
    torch.manual_seed(0)
    digest = save_checkpoint(path, _Tiny(_TinyConfig()), _TinyConfig())
    return path, digest


def test_the_shipped_catalogue_is_valid():
    catalogue = cat.Catalogue.read()
    for entry in catalogue.entries.values():  # every shipped entry resolves to a verified file with a model card
        assert catalogue.resolve(entry.id).is_file()
        assert (catalogue.resources_dir / entry.model_card).is_file()


@pytest.mark.parametrize("bad, message", [
    ({"task": "segmentation"}, "task"),
    ({"sha256": "abc"}, "sha256"),
    ({"inputs": []}, "inputs"),
    ({"extra_field": 1}, "extra_field"),
])
def test_schema_refuses_bad_entries(tmp_path, bad, message):
    path = _write_catalogue(tmp_path / "res", [_entry(**bad)])
    with pytest.raises(ModelError, match=message):
        cat.Catalogue.read(path)


def test_missing_field_and_duplicate_ids_are_refused(tmp_path):
    entry = _entry()
    del entry["sha256"]
    with pytest.raises(ModelError, match="sha256"):
        cat.Catalogue.read(_write_catalogue(tmp_path / "a", [entry]))
    with pytest.raises(ModelError, match="twice"):
        cat.Catalogue.read(_write_catalogue(tmp_path / "b", [_entry(), _entry()]))


def test_resolve_in_resources_and_refuse_a_wrong_checksum(tmp_path, weights):
    path, digest = weights
    res = tmp_path / "res"
    (res / "weights").mkdir(parents=True)
    (res / "weights" / "demo.pt").write_bytes(path.read_bytes())
    catalogue = cat.Catalogue.read(_write_catalogue(res, [_entry(sha256=digest)]), cache_dir=tmp_path / "cache")
    assert catalogue.resolve("demo-patient", task="patient") == res / "weights" / "demo.pt"
    model, config, payload = catalogue.load("demo-patient")
    assert isinstance(model, _Tiny) and config.width == 3
    with pytest.raises(ModelError, match="'cls' model is needed"):
        catalogue.resolve("demo-patient", task="cls")
    with pytest.raises(ModelError, match="not in the catalogue"):
        catalogue.resolve("nope")
    (res / "weights" / "demo.pt").write_bytes(path.read_bytes() + b"x")  # corrupted
    with pytest.raises(ModelError, match="corrupt"):
        catalogue.resolve("demo-patient")


def test_import_into_the_cache_for_a_url_entry(tmp_path, weights, monkeypatch):
    path, digest = weights
    monkeypatch.setenv("LNSTAGING_CACHE", str(tmp_path / "user-cache"))
    catalogue = cat.Catalogue.read(_write_catalogue(tmp_path / "res", [
        _entry(file="https://example.org/models/demo-v1.pt", sha256=digest)]))
    assert catalogue.cache_dir == tmp_path / "user-cache"
    with pytest.raises(ModelError, match="https://example.org/models/demo-v1.pt"):
        catalogue.resolve("demo-patient")  # not there yet, and never downloaded
    wrong = tmp_path / "other.pt"
    wrong.write_bytes(b"not the weights")
    with pytest.raises(ModelError, match="nothing was imported"):
        catalogue.import_weights(wrong, "demo-patient")
    assert not catalogue.cached_path(catalogue.get("demo-patient")).exists()
    target = catalogue.import_weights(path, "demo-patient")
    assert target == tmp_path / "user-cache" / "demo-patient" / "1" / "demo-v1.pt"
    assert sha256_of(target) == digest
    assert catalogue.resolve("demo-patient") == target


def test_absolute_path_entry(tmp_path, weights):
    path, digest = weights
    catalogue = cat.Catalogue.read(_write_catalogue(tmp_path / "res", [_entry(file=str(path), sha256=digest)]),
                                   cache_dir=tmp_path / "cache")
    assert catalogue.resolve("demo-patient") == path


def test_default_cache_dir(monkeypatch):
    monkeypatch.delenv("LNSTAGING_CACHE", raising=False)
    assert cat.default_cache_dir() == Path.home() / ".cache" / "lnstaging"


def test_subset_validator_agrees_on_types():
    schema = json.loads((REPO / "Resources" / "Models.schema.json").read_text())
    assert cat._validate_subset({"format": "lnstaging-models/1", "models": []}, schema, "") == []
    assert cat._validate_subset({"format": "lnstaging-models/1", "models": [_entry(version=1)]}, schema, "")
    assert cat._validate_subset({"models": []}, schema, "") == ["(top): 'format' is a required property"]
