"""What pyproject.toml and the lock files promise (issue 31): the runtime lock holds exactly what the declared runtime
dependencies and extras need, the test lock only the test tools; every third-party module the library imports is
declared; the command line shows docs/*.md pages as the URLs that pyproject.toml gives, and a missing optional
package is one line that says what to install."""

import argparse
import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from LNStagingLib import cli
from LNStagingLib.docs_links import DOCS_URL, link_docs

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pins(name: str) -> dict[str, str]:
    lines = [line.strip() for line in (REPO / name).read_text().splitlines()]
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements pull in, read from the installed metadata of this (locked) environment."""
    found, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = (name, tuple(sorted(requirement.extras)))
        if key in found:
            continue
        found.add(key)
        for line in distribution(requirement.name).requires or []:
            child = Requirement(line)
            extras = [{"extra": e} for e in (requirement.extras or {""})]
            if child.marker is None or any(child.marker.evaluate(e) for e in extras):
                todo.append(child)
    return {name for name, _ in found}


def test_runtime_lock_is_what_the_declared_dependencies_need_and_the_test_lock_the_rest():
    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert not set(runtime) & set(test)
    extras = PROJECT["optional-dependencies"]
    needed = closure(PROJECT["dependencies"] + extras["slicer"] + extras["web"])
    assert {canonicalize_name(n) for n in runtime} == needed
    test_only = closure(PROJECT["dependencies"] + extras["slicer"] + extras["web"] + extras["test"]) - needed
    assert {canonicalize_name(n) for n in test} == test_only
    assert {"pytest", "playwright", "rt-utils", "dicompyler-core"} <= test_only
    for name, version in {**runtime, **test}.items():  # the locks are what this environment runs
        assert Version(distribution(name).version).public == version, name  # torch: 2.13.0+cpu


def _third_party_imports() -> dict[str, set[str]]:
    """{top-level module: files importing it} over LNStagingLib (lazy imports inside functions included)."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "LNStagingLib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "LNStagingLib":
                    found.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    return found


OPTIONAL_WITH_FALLBACK = {"jsonschema"}  # models/catalogue.py validates without it (the schema subset it uses)


def test_every_imported_package_is_declared():
    declared = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    extras = {canonicalize_name(Requirement(r).name) for group in ("slicer", "web")
              for r in PROJECT["optional-dependencies"][group]}
    distributions = packages_distributions()
    web_extra = closure(PROJECT["optional-dependencies"]["web"] + PROJECT["optional-dependencies"]["slicer"])
    undeclared = {}
    for module, files in _third_party_imports().items():
        if module in OPTIONAL_WITH_FALLBACK:
            continue
        names = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert names, f"{module} (imported by {sorted(files)}) is not installed here"
        core = names & declared
        only_in_extra = [f for f in files if f.startswith(("LNStagingLib/web/", "LNStagingLib/scene/"))]
        if core or (names & (extras | web_extra) and len(only_in_extra) == len(files)):
            continue
        undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not declared in pyproject.toml dependencies: {undeclared}"
    assert "vtk" in declared  # export rtstruct contours with VTK (issue 31)


def test_missing_optional_package_is_one_line_saying_what_to_install(monkeypatch, capsys):
    def needs_trame(args):
        raise ModuleNotFoundError("No module named 'trame_slicer'", name="trame_slicer")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: argparse.Namespace(command="review", func=needs_trame,
                                                                               verbose=False))
    assert cli.main(["review"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'lnstaging[web]'" in err[0] and "trame_slicer" in err[0], err

    def own_module_missing(args):
        raise ModuleNotFoundError("No module named 'LNStagingLib.nothing'", name="LNStagingLib.nothing")

    monkeypatch.setattr(parser, "parse_args", lambda argv: argparse.Namespace(command="review", func=own_module_missing,
                                                                               verbose=False))
    with pytest.raises(ModuleNotFoundError):  # a broken installation of ours is not dressed up as a user's choice
        cli.main(["review"])


def test_docs_pages_are_shown_as_the_project_urls(capsys):
    assert PROJECT["urls"]["Documentation"] == DOCS_URL
    pages = {page for path in (REPO / "LNStagingLib").rglob("*.py") if path.name != "docs_links.py"
             for page in re.findall(r"(?<![\w/.])docs/([A-Za-z0-9_]+\.md)", path.read_text())}
    missing = sorted(page for page in pages if not (REPO / "docs" / page).is_file())
    assert pages and not missing, f"messages name docs pages that do not exist: {missing}"
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    printed = capsys.readouterr().out
    assert f"{DOCS_URL}EXPORT.md" in printed and " docs/EXPORT.md" not in printed
    assert link_docs("see docs/SCALING.md, or ../docs/X.md") == f"see {DOCS_URL}SCALING.md, or ../docs/X.md"
