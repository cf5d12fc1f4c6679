"""The package's layering (docs/ARCHITECTURE.md), read from the source: evaluation/ uses inference/ and dataset/,
never training/ (training uses evaluation's metrics: one direction, no loop); candidates/ does not reach into
models/ for geometry checks (io/ holds them)."""

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "LNStagingLib"


def imported_packages(package: str) -> dict[str, set[str]]:
    """module file -> the LNStagingLib subpackages it imports (at module level or inside functions)."""
    out = {}
    for path in sorted((LIB / package).glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                parts = (node.module or "").split(".")
                found.add(parts[0] if node.level == 2 else package)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("LNStagingLib."):
                found.add(node.module.split(".")[1])
        out[path.name] = found
    return out


@pytest.mark.parametrize("package, forbidden", [("evaluation", "training"), ("candidates", "models"),
                                                ("inference", "training"), ("dataset", "training")])
def test_no_forbidden_dependency(package, forbidden):
    offenders = {name: deps for name, deps in imported_packages(package).items() if forbidden in deps}
    assert not offenders, f"{package}/ imports {forbidden}/: {offenders}"


def test_the_scan_sees_real_imports():
    """The check above can fail: evaluation/ does import inference/ and training/ imports evaluation/."""
    assert any("inference" in deps for deps in imported_packages("evaluation").values())
    assert any("evaluation" in deps for deps in imported_packages("training").values())
