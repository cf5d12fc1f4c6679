"""Check what the Slicer tests record about Slicer against a Slicer *source* tree at a git ref.

There is no slicer-core wheel of 5.10, so for 5.10 the contract of Testing/test_slicer_api_contract.py is checked by
reading Slicer's headers: every listed MRML method must appear in a header of the ref (as a declaration or a
vtkSetMacro/vtkGetMacro/vtkBooleanMacro name). Coarse (a whole-word match in any header, not in the class's own), so
it catches removed or renamed methods, not moved ones. It also checks, by parsing the ref's
Modules/Scripted/SampleData/SampleData.py with ast, the facts Testing/test_slicer_sample_data.py records about Sample
Data (parameter names, the len(uris) and equal-length checks, the per-uri None filling, the duplicate check), and the
restatement of the extensions catalog entry schema v1.0.2 in Testing/test_slicer_extension_index.py against the
schema file at the ref (Schemas/, from v5.12.0 on) and, with --index, in an ExtensionsIndex clone (schemas/ at HEAD).
A developer tool (needs a clone of github.com/Slicer/Slicer), not part of the test suite.

    python scripts/check_slicer_source_api.py /path/to/Slicer.git v5.10.0 [--index /path/to/ExtensionsIndex.git]
    python scripts/check_slicer_source_api.py /path/to/Slicer.git v5.10.0 --packages

--packages compares Testing/slicer_versions/slicer-<major.minor>.txt (the pins `make test-slicer-510` installs) with
the versions in the tag's SuperBuild files.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recorded(test_file: str, name: str):
    """A literal a test records (CONTRACT, SAMPLEDATA_PARAMETERS, ...), read with ast without importing the test."""
    tree = ast.parse((ROOT / "Testing" / test_file).read_text())
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and getattr(target, "id", "") == name:
            return ast.literal_eval(node.value)
    raise SystemExit(f"{name} not found in Testing/{test_file}")


def header_has(git_dir: str, ref: str, method: str) -> bool:
    names = {method}
    for prefix in ("Set", "Get"):
        if method.startswith(prefix):
            names.add(method[len(prefix):])  # vtkSetMacro(Name, ...) declares SetName
    if method.endswith(("On", "Off")):
        names.add(re.sub(r"(On|Off)$", "", method))  # vtkBooleanMacro(Name, ...) declares NameOn/NameOff
    for name in names:
        done = subprocess.run(["git", "--git-dir", git_dir, "grep", "-l", "-w", name, ref, "--", "*.h"],
                              capture_output=True, text=True)
        if done.stdout.strip():
            return True
    return False


# Package -> (SuperBuild file at the tag, regular expression giving its version there)
SUPERBUILD_PINS = {
    "numpy": ("SuperBuild/External_python-numpy.cmake", r"numpy==([\d.]+)"),
    "scipy": ("SuperBuild/External_python-scipy.cmake", r"scipy==([\d.]+)"),
    "pydicom": ("SuperBuild/External_python-dicom-requirements.cmake", r"pydicom==([\d.]+)"),
    "pillow": ("SuperBuild/External_python-dicom-requirements.cmake", r"pillow==([\d.]+)"),
    "SimpleITK": ("SuperBuild/External_SimpleITK.cmake", r"slicer-v([\d.]+)-"),
}
SAMPLEDATA = "Modules/Scripted/SampleData/SampleData.py"
SCHEMA = "slicer-extension-catalog-entry-schema-v1.0.2.json"  # Schemas/ in Slicer, schemas/ in ExtensionsIndex
# Schema keywords the restatement covers: the validating ones it restates, and annotations that validate nothing.
COVERED_KEYWORDS = {"$schema", "$id", "title", "description", "default", "type", "required", "additionalProperties",
                    "properties", "enum", "items", "additionalItems", "minimum", "maximum"}


def git_show(git_dir: str, ref: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"{ref}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def superbuild_versions(git_dir: str, ref: str) -> dict[str, str]:
    versions = {}
    for package, (path, pattern) in SUPERBUILD_PINS.items():
        try:
            match = re.search(pattern, git_show(git_dir, ref, path))
        except subprocess.CalledProcessError:  # the file is not at this ref
            match = None
        versions[package] = match.group(1) if match else "?"
    return versions


def pinned_versions(ref: str) -> dict[str, str]:
    minor = ".".join(ref.lstrip("v").split(".")[:2])
    path = ROOT / "Testing" / "slicer_versions" / f"slicer-{minor}.txt"
    if not path.is_file():
        return {}
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if "==" in line)


def function(tree: ast.Module, cls: str, name: str) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == name), None)
    return None


def is_len_of(node: ast.AST, name: str | None = None) -> bool:
    """``len(<name>)`` (any name when None)."""
    return (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "len" and len(node.args) == 1
            and isinstance(node.args[0], ast.Name) and name in (None, node.args[0].id))


def filled_per_uri(body: ast.FunctionDef) -> set[str]:
    """Names assigned ``[...] * len(uris)`` in the function."""
    return {node.targets[0].id for node in ast.walk(body) if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.BinOp)
            and isinstance(node.value.op, ast.Mult) and is_len_of(node.value.right, "uris")}


def equal_length_checks(body: ast.FunctionDef) -> list[set[str]]:
    """The name sets of each ``len(a) == len(b) == ...`` comparison in the function."""
    return [{n.args[0].id for n in [node.left, *node.comparators]} for node in ast.walk(body)
            if isinstance(node, ast.Compare) and all(isinstance(op, ast.Eq) for op in node.ops)
            and all(is_len_of(n) for n in [node.left, *node.comparators])]


def sampledata_problems(source: str) -> list[str]:
    """Where SampleData.py's source differs from what Testing/test_slicer_sample_data.py records."""
    test = "test_slicer_sample_data.py"
    tree = ast.parse(source)
    problems = []
    functions = {}
    for qualified, names in recorded(test, "SAMPLEDATA_PARAMETERS").items():
        functions[qualified] = function(tree, *qualified.split("."))
        found = [a.arg for a in functions[qualified].args.args] if functions[qualified] else None
        if found != names:
            problems.append(f"{qualified} parameters are {found}, recorded {names}")
    init = functions.get("SampleDataSource.__init__")
    register = functions.get("SampleDataLogic.registerCustomSampleDataSource")
    if init:
        if not any(is_len_of(node, "uris") for node in ast.walk(init)):
            problems.append("SampleDataSource.__init__ no longer evaluates len(uris)")
        missing = set(recorded(test, "SAMPLEDATA_PER_URI")) - filled_per_uri(init)
        if missing:
            problems.append(f"SampleDataSource.__init__ no longer fills {sorted(missing)} per uri")
        if set(recorded(test, "SAMPLEDATA_EQUAL_LENGTHS")) not in equal_length_checks(init):
            problems.append(f"SampleDataSource.__init__ checks equal lengths of {equal_length_checks(init)}, recorded "
                            f"{recorded(test, 'SAMPLEDATA_EQUAL_LENGTHS')}")
    if register and not any(isinstance(node, ast.Attribute) and node.attr == "isSampleDataSourceRegistered"
                            for node in ast.walk(register)):
        problems.append("registerCustomSampleDataSource no longer checks isSampleDataSourceRegistered")
    return problems


def schema_keywords(node) -> set[str]:
    """Every keyword used in a JSON schema (property names under "properties" are not keywords)."""
    if isinstance(node, list):
        return set().union(*map(schema_keywords, node))
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        children = value.values() if key == "properties" else [value]
        found |= set().union(*map(schema_keywords, children))
    return found


def schema_problems(schema: dict) -> list[str]:
    """Where the schema differs from the restatement in Testing/test_slicer_extension_index.py."""
    restated = recorded("test_slicer_extension_index.py", "CATALOG_ENTRY_SCHEMA")
    properties = schema.get("properties", {})
    found = {
        "id": schema.get("$id"),
        "required": schema.get("required"),
        "types": {key: rule.get("type") for key, rule in properties.items()},
        "item_types": {key: rule["items"]["type"] for key, rule in properties.items() if "items" in rule},
        "enums": {key: rule["enum"] for key, rule in properties.items() if "enum" in rule},
        "ranges": {key: [rule.get("minimum"), rule.get("maximum")] for key, rule in properties.items()
                   if "minimum" in rule or "maximum" in rule},
    }
    problems = [f"{key}: schema has {found[key]}, restated {restated[key]}" for key in restated
                if found[key] != restated[key]]
    if schema.get("additionalProperties") is not False:
        problems.append("the schema allows other keys; the restatement does not")
    if schema_keywords(schema) - COVERED_KEYWORDS:
        problems.append(f"rules the restatement leaves out: {sorted(schema_keywords(schema) - COVERED_KEYWORDS)}")
    return problems


def check_schema(git_dir: str, ref: str, path: str, where: str) -> bool:
    """Print the schema's check at ``ref``; False on a difference. A ref without the file is said, not failed."""
    try:
        schema = json.loads(git_show(git_dir, ref, path))
    except subprocess.CalledProcessError:
        print(f"{where}: no {path} (schema v1.0.2 not checked there)")
        return True
    problems = schema_problems(schema)
    print(f"{where}: {path} " + ("differs from the restatement: " + "; ".join(problems) if problems
                                 else "matches the restatement"))
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("git_dir", help="a clone of github.com/Slicer/Slicer (bare or not)")
    parser.add_argument("ref", help="the tag to check, e.g. v5.10.0")
    parser.add_argument("--packages", action="store_true", help="compare the pinned packages with the tag's SuperBuild")
    parser.add_argument("--index", help="a clone of github.com/Slicer/ExtensionsIndex: check its schemas/ at HEAD too")
    args = parser.parse_args()
    git_dir, ref = args.git_dir, args.ref
    if args.packages:
        shipped, pinned = superbuild_versions(git_dir, ref), pinned_versions(ref)
        wrong = {p: (pinned.get(p), v) for p, v in shipped.items() if pinned and pinned.get(p) != v}
        print(f"{ref}: " + ", ".join(f"{p}=={v}" for p, v in shipped.items()))
        if wrong:
            print(f"pins differ from the tag (pinned, shipped): {wrong}")
        return 1 if wrong else 0
    ok = True
    missing = [f"{cls}.{m}" for cls, methods in recorded("test_slicer_api_contract.py", "CONTRACT").items()
               if not cls.startswith("vtk.") for m in methods if not header_has(git_dir, ref, m)]
    if missing:
        print(f"{ref}: not found in any header: {', '.join(missing)}")
        ok = False
    else:
        print(f"{ref}: every MRML method of the contract is declared in a header")
    problems = sampledata_problems(git_show(git_dir, ref, SAMPLEDATA))
    print(f"{ref}: {SAMPLEDATA} " + ("differs from Testing/test_slicer_sample_data.py: " + "; ".join(problems)
                                      if problems else "has the recorded parameters and checks"))
    ok &= not problems
    ok &= check_schema(git_dir, ref, f"Schemas/{SCHEMA}", ref)
    if args.index:
        ok &= check_schema(args.index, "HEAD", f"schemas/{SCHEMA}", "ExtensionsIndex HEAD")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
