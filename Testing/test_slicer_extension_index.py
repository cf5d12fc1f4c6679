"""LNStaging.json, the description the Slicer Extensions Index expects (github.com/Slicer/ExtensionsIndex), checked
against the index's catalog entry schema v1.0.2 as restated in CATALOG_ENTRY_SCHEMA below (our words, not the schema
file; scripts/check_slicer_source_api.py verifies the restatement against the schema in a Slicer or ExtensionsIndex
checkout, including that the schema uses no rule the restatement leaves out) and against what the index's
scripts/check_description_files.py checks besides (category among its accepted ones, LF line endings, checked-out
repository under 100 MB), and consistent with the extension's CMakeLists.txt."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = ROOT / "LNStaging.json"
# The rules of the extensions catalog entry schema v1.0.2,
# https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json
# (Slicer's Schemas/ at v5.12.3; the index's schemas/ at 07f1d1b is the same file; not at v5.10.0): its id, the
# required keys, no other keys than those of "types", each key's JSON type, the allowed values and the ranges.
CATALOG_ENTRY_SCHEMA = {
    "id": "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json#",
    "required": ["$schema", "category", "scm_url"],
    "types": {"$schema": "string", "category": "string", "scm_url": "string", "scm_revision": "string",
              "scm_type": "string", "build_dependencies": "array", "dicom_support_rule": "string",
              "build_subdirectory": "string", "enabled": "boolean", "tier": "integer"},
    "item_types": {"build_dependencies": "string"},
    "enums": {"scm_type": ["git", "local"]},
    "ranges": {"tier": [1, 5]},
}
# scripts/check_description_files.py ACCEPTED_EXTENSION_CATEGORIES at 07f1d1b (the ones that could fit LNStaging)
ACCEPTED_CATEGORIES_SUBSET = {"Segmentation", "Nuclear Medicine", "Radiotherapy", "Quantification"}
SIZE_LIMIT_MB = 100  # check_repository_size at 07f1d1b
TYPES = {"string": str, "array": list, "boolean": bool, "integer": int, "object": dict}


def schema_problems(document: dict, schema: dict = CATALOG_ENTRY_SCHEMA) -> list[str]:
    problems = [f"missing {key}" for key in schema["required"] if key not in document]
    problems += [f"not in the schema: {key}" for key in document if key not in schema["types"]]
    for key, value in document.items():
        kind = schema["types"].get(key)
        if kind and not isinstance(value, TYPES[kind]):
            problems.append(f"{key} is not {kind}")
        if key in schema["enums"] and value not in schema["enums"][key]:
            problems.append(f"{key} not one of {schema['enums'][key]}")
        item = schema["item_types"].get(key)
        if item and isinstance(value, list) and not all(isinstance(v, TYPES[item]) for v in value):
            problems.append(f"{key} items are not {item}")
        if key in schema["ranges"] and not schema["ranges"][key][0] <= value <= schema["ranges"][key][1]:
            problems.append(f"{key} out of range")
    return problems


def cmake_value(name: str) -> str:
    match = re.search(rf"set\({name} (.+?)\)\n", (ROOT / "CMakeLists.txt").read_text())
    return match.group(1).strip('"')


def test_the_description_follows_the_index_schema():
    raw = DESCRIPTION.read_bytes()
    assert b"\r" not in raw  # LF-only, as the index requires
    document = json.loads(raw)
    assert schema_problems(document) == []
    assert document["$schema"] == CATALOG_ENTRY_SCHEMA["id"]


def test_the_check_can_fail():
    bad = {"$schema": CATALOG_ENTRY_SCHEMA["id"], "category": 3, "scm_type": "svn", "build_dependencies": "SlicerRT",
           "tier": 9, "homepage": "x"}
    assert schema_problems({**json.loads(DESCRIPTION.read_text()), "build_dependencies": ["SlicerRT", 1]}) == [
        "build_dependencies items are not string"]
    assert sorted(schema_problems(bad)) == sorted([
        "missing scm_url", "not in the schema: homepage", "category is not string", "scm_type not one of "
        "['git', 'local']", "build_dependencies is not array", "tier out of range"])


def test_the_description_matches_the_extension_cmake():
    document = json.loads(DESCRIPTION.read_text())
    assert document["category"] == cmake_value("EXTENSION_CATEGORY") and document["category"] in ACCEPTED_CATEGORIES_SUBSET
    assert document["build_dependencies"] == ["SlicerRT", "PyTorch"] == cmake_value("EXTENSION_DEPENDS").split()
    assert document["build_subdirectory"] == cmake_value("EXTENSION_BUILD_SUBDIRECTORY")
    homepage = cmake_value("EXTENSION_HOMEPAGE")
    assert document["scm_url"].removesuffix(".git") == homepage.split("/blob/")[0]
    assert document["scm_revision"] == homepage.split("/blob/")[1].split("/")[0]


def test_the_checked_out_repository_stays_under_the_index_size_limit():
    """The index clones the repository and sums its files: tracked files only (no venv, no build)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, text=True)
    if listed.returncode != 0:
        import pytest

        pytest.skip("not a git checkout")
    files = [ROOT / name for name in listed.stdout.split("\0") if name]
    total_mb = sum(f.stat().st_size for f in files if f.is_file()) / 2**20
    assert total_mb < SIZE_LIMIT_MB, f"{total_mb:.1f} MB"
