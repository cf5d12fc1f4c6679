"""The model catalogue (Resources/Models.json): which weights exist, where they are, and their sha256.

A model id resolves to a local file whose sha256 matches the catalogue, or a ModelError saying what to do.
Files live in Resources/ (demo weights shipped with the code), at an absolute path, or in the user cache folder
(``~/.cache/lnstaging``, or ``$LNSTAGING_CACHE``) where ``import_weights`` copies a file the user downloaded or
received. Nothing here downloads: a URL entry tells the user where to fetch the file by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import ModelError
from ..resource_files import resources_dir
from .checkpoint import load_checkpoint, load_model, sha256_of

CATALOGUE_FORMAT = "lnstaging-models/1"
TASKS = ("seg", "cls", "identification", "patient")
RESOURCES_DIR = resources_dir()
CACHE_ENV = "LNSTAGING_CACHE"
REVIEW_STATE_INPUT = "review decisions"  # in a cls entry's inputs: the GNNp reads the review state (issue 19)


def default_cache_dir() -> Path:
    """The user cache folder for imported weights: $LNSTAGING_CACHE, else ~/.cache/lnstaging."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "lnstaging"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    version: str
    task: str
    file: str
    sha256: str
    inputs: tuple[str, ...]
    training_data: dict
    model_card: str
    metrics: dict
    description: str = ""
    default: bool = False
    body_site: str = ""  # where it applies, e.g. "abdomen/pancreas"; "any" (or "" in older catalogues) = any site
    training_domain: str = ""  # "synthetic phantom" or "patients"

    @property
    def is_url(self) -> bool:
        return urlparse(self.file).scheme in ("http", "https")

    @property
    def file_name(self) -> str:
        return Path(urlparse(self.file).path if self.is_url else self.file).name


class Catalogue:
    """A validated Models.json plus the folders its files are looked up in."""

    def __init__(self, entries: list[ModelEntry], resources_dir: Path, cache_dir: Path | None = None):
        self.entries = {entry.id: entry for entry in entries}
        self.resources_dir = Path(resources_dir)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    @classmethod
    def read(cls, path: Path | str | None = None, cache_dir: Path | str | None = None) -> "Catalogue":
        """Read and validate a catalogue (default: Resources/Models.json next to the library)."""
        path = Path(path) if path is not None else RESOURCES_DIR / "Models.json"
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"Model catalogue {path} is missing; reinstall LNStaging.") from None
        except json.JSONDecodeError as error:
            raise ModelError(f"Model catalogue {path} is not valid JSON ({error}); fix or restore it.") from None
        problems = validate(document, json.loads((path.parent / "Models.schema.json").read_text())
                            if (path.parent / "Models.schema.json").exists() else _bundled_schema())
        if problems:
            raise ModelError(f"Model catalogue {path.name} does not follow Models.schema.json: {problems[0]}")
        entries = [_entry(raw) for raw in document["models"]]
        ids = [e.id for e in entries]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ModelError(f"Model catalogue {path.name} lists model id(s) {', '.join(duplicated)} twice.")
        return cls(entries, path.parent, Path(cache_dir) if cache_dir is not None else None)

    def get(self, model_id: str, task: str | None = None) -> ModelEntry:
        entry = self.entries.get(model_id)
        if entry is None:
            known = ", ".join(sorted(self.entries)) or "none"
            raise ModelError(f"Model {model_id!r} is not in the catalogue (known: {known}); check the id or add it "
                             "to Resources/Models.json.")
        if task is not None and entry.task != task:
            raise ModelError(f"Model {model_id!r} is a {entry.task!r} model, but a {task!r} model is needed here.")
        return entry

    def for_task(self, task: str) -> list[ModelEntry]:
        return [e for e in self.entries.values() if e.task == task]

    def any_site_without_attention(self) -> ModelEntry | None:
        """A stage-1 model that needs no organ masks and applies to any body site (issue 13), if the catalogue has one."""
        return next((e for e in self.for_task("seg") if "attention" not in e.inputs and e.body_site in ("", "any")), None)

    def default_id(self, task: str) -> str | None:
        """The entry marked "default" for ``task``, else the task's only entry, else None (the stage is skipped)."""
        entries = self.for_task(task)
        marked = [e.id for e in entries if e.default]
        if marked:
            return marked[0]
        return entries[0].id if len(entries) == 1 else None

    def cached_path(self, entry: ModelEntry) -> Path:
        return self.cache_dir / entry.id / entry.version / entry.file_name

    def resolve(self, model_id: str, task: str | None = None) -> Path:
        """A local file for the model whose sha256 matches the catalogue; ModelError otherwise."""
        entry = self.get(model_id, task)
        places = [self.cached_path(entry)]
        if not entry.is_url:
            given = Path(entry.file).expanduser()
            places.insert(0, given if given.is_absolute() else self.resources_dir / given)
        for place in places:
            if place.is_file():
                actual = sha256_of(place)
                if actual == entry.sha256:
                    return place
                raise ModelError(f"{place} has sha256 {actual[:12]}..., but the catalogue expects {entry.sha256[:12]}... "
                                 f"for {entry.id}: the file is corrupt or a different version; delete it and import "
                                 "the right file.")
        where = f"download {entry.file} by hand" if entry.is_url else f"put {entry.file_name} in {places[0].parent}"
        raise ModelError(f"Weights of model {entry.id} are not on this computer: {where}, then import it with "
                         f"import_weights (it is checked against the catalogue's sha256).")

    def import_weights(self, path: Path | str, model_id: str) -> Path:
        """Copy a weights file into the cache after checking its sha256 against the catalogue entry."""
        entry = self.get(model_id)
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelError(f"{path} is not a file; give the weights file of {model_id}.")
        actual = sha256_of(path)
        if actual != entry.sha256:
            raise ModelError(f"{path.name} is not the weights file of {model_id} {entry.version} (sha256 {actual[:12]}... "
                             f"instead of {entry.sha256[:12]}...); nothing was imported.")
        target = self.cached_path(entry)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        if sha256_of(partial) != entry.sha256:
            partial.unlink()
            raise ModelError(f"Copying {path.name} into {target.parent} corrupted it; check the disk and try again.")
        partial.replace(target)
        return target

    def rescore_model_ids(self) -> list[str]:
        """The cls models that re-score pending candidates from review decisions (issue 19): those whose checkpoint
        was trained with the review state as node input (``train cls --reveal-labels``).

        The checkpoint's configuration decides when torch is installed and the weights are here. Before that (a
        fresh Slicer panel, weights not imported yet) the entry's ``inputs`` naming "review decisions" do; choosing
        such a model then says what is missing."""
        ids = []
        for entry in sorted(self.for_task("cls"), key=lambda e: e.id):
            try:
                payload = load_checkpoint(self.resolve(entry.id, "cls"))
                usable = bool((payload.get("config") or {}).get("review_state"))
            except (ImportError, ModelError):
                usable = REVIEW_STATE_INPUT in entry.inputs
            if usable:
                ids.append(entry.id)
        return ids

    def load(self, model_id: str, task: str | None = None, map_location: str = "cpu"):
        """Resolve, verify and build the network: (model, config, checkpoint payload)."""
        entry = self.get(model_id, task)
        return load_model(self.resolve(model_id, task), entry.sha256, map_location)


def resolve_model_file(value: str | Path, task: str, catalogue: Catalogue | None = None) -> tuple[Path, str | None]:
    """A model given as a file or as a catalogue id: (local file, the catalogue's sha256 or None for a file).

    A catalogue id resolves to its verified file; anything else must be an existing file."""
    path = Path(value).expanduser()
    if path.is_file():
        return path, None
    catalogue = catalogue or Catalogue.read()
    if str(value) in catalogue.entries:
        entry = catalogue.get(str(value), task)
        return catalogue.resolve(entry.id, task), entry.sha256
    raise ModelError(f"{value} is neither a model file nor a {task} model of the catalogue "
                     f"({', '.join(e.id for e in catalogue.for_task(task)) or 'none'}).")


def _entry(raw: dict) -> ModelEntry:
    return ModelEntry(id=raw["id"], version=raw["version"], task=raw["task"], file=raw["file"], sha256=raw["sha256"],
                      inputs=tuple(raw["inputs"]), training_data=raw["training_data"], model_card=raw["model_card"],
                      metrics=raw["metrics"], description=raw.get("description", ""),
                      default=bool(raw.get("default", False)), body_site=raw.get("body_site", ""),
                      training_domain=raw.get("training_domain", ""))


def _bundled_schema() -> dict:
    return json.loads((RESOURCES_DIR / "Models.schema.json").read_text())


def validate(document: Any, schema: dict) -> list[str]:
    """Problems of a document against a JSON schema (empty when valid).

    Uses ``jsonschema`` when installed; otherwise checks the subset of JSON Schema that Models.schema.json
    uses (type, required, properties, additionalProperties, enum, pattern, minLength, minItems, minimum, items).
    """
    try:
        import jsonschema
    except ImportError:
        return _validate_subset(document, schema, "")
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(document)]


_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}


def _validate_subset(value: Any, schema: dict, where: str) -> list[str]:
    at = where or "(top)"
    expected = schema.get("type")
    if expected is not None:
        ok = isinstance(value, _TYPES[expected]) and not (expected in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return [f"{at}: must be of type {expected}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{at}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{at}: must not be empty")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{at}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and "minimum" in schema and value < schema["minimum"]:
        problems.append(f"{at}: must be >= {schema['minimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{at}: needs at least {schema['minItems']} item(s)")
        for i, item in enumerate(value):
            problems += _validate_subset(item, schema.get("items", {}), f"{where}/{i}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{at}: '{key}' is a required property")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                problems += _validate_subset(item, properties[key], f"{where}/{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{at}: unexpected property '{key}'")
    return problems
