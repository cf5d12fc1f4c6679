"""The wheel is the tool: built from the sources, installed into a fresh virtual environment and run from outside the
checkout, `lnstaging models list` and `lnstaging demo` work with what the wheel carries (catalogue, demo weights and
model cards, demo case) and nothing of the checkout.

The fresh environment sees the third-party packages of the test environment (installed from requirements.lock)
through a .pth line instead of reinstalling torch; that path is not a site directory, so its .pth files (an
editable install of the checkout) are not processed, and LNStagingLib can only come from the wheel.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "LNStagingLib", "Resources")


def _run(argv, cwd, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel offline from a copy of the sources (the build writes build/ and *.egg-info beside them)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", work / "dist",
          source], cwd=work, timeout=300)
    (built,) = (work / "dist").glob("lnstaging-*.whl")
    return built


def test_wheel_holds_every_module_and_the_resources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "LNStagingLib").rglob("*.py")}
    missing = sorted(modules - names)
    assert not missing, (f"{missing} are not in the wheel: add their package to [tool.setuptools] packages in "
                         "pyproject.toml")
    catalogue = json.loads((REPO / "Resources" / "Models.json").read_text())
    bundled = [e[key] for e in catalogue["models"] for key in ("file", "model_card") if "://" not in e[key]]
    assert bundled, "the catalogue names no bundled file"
    for relative in ["Models.json", "Models.schema.json", "DemoCase/dataset.json", *bundled]:
        assert f"LNStagingLib/Resources/{relative}" in names, relative
    demo = {p.relative_to(REPO / "Resources").as_posix() for p in (REPO / "Resources" / "DemoCase").rglob("*") if p.is_file()}
    assert {f"LNStagingLib/Resources/{p}" for p in demo} <= names


@pytest.mark.slow
def test_installed_wheel_lists_models_and_runs_the_demo_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, timeout=120)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel],
         cwd=tmp_path, timeout=300)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip())
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "test_environment_packages.pth").write_text("\n".join(sorted(outer)) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([python, "-c", "import LNStagingLib, LNStagingLib.resource_files as r; "
                                "print(LNStagingLib.__file__); print(r.resources_dir())"], cwd=elsewhere).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    listing = _run([venv / "bin" / "lnstaging", "models", "list"], cwd=elsewhere, timeout=120).stdout
    assert "not available" not in listing, listing
    for task in ("seg", "cls", "identification", "patient"):
        assert f"[{task}] (default): {venv}" in listing, listing

    demo = _run([venv / "bin" / "lnstaging", "demo", "--threads", "1", "--out", "demo"], cwd=elsewhere, timeout=600)
    assert "Report:" in demo.stdout and (elsewhere / "demo" / "report.html").is_file(), demo.stdout
    warnings = [line for line in demo.stderr.splitlines() if re.search(r"WARN\||^Warning: |\w+Warning: ", line)]
    assert not warnings, demo.stderr  # no third-party warnings (torch's TF32/oneDNN notice) in normal output
    provenance = json.loads((elsewhere / "demo" / "provenance.json").read_text())
    assert set(provenance["models_applied"]) == {"seg", "cls", "identification", "patient"}
