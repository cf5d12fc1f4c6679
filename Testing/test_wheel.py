"""The wheel is the tool: built from the sources, installed into a fresh virtual environment with only the
dependencies it declares (pyproject.toml, at the pins of requirements.lock; no extras, no test tools) and run from
outside the checkout: `lnstaging models list`, `lnstaging demo` and the main path of every command that takes a
patient's images (candidates, run, export rtstruct and seg, report) work on real data from Testing/Data; the browser
review, which needs the [web] extra, says in one line what to install (issue 31).

The install takes the packages from the machine's package indexes (pip's configuration; torch from the local disk),
a few minutes the first time and less from pip's cache.
"""

import json
import os
import re
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="module")
def clean_venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel and the dependencies it declares, nothing else."""
    venv = tmp_path_factory.mktemp("clean") / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=venv.parent, timeout=300)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-c", REPO / "requirements.lock", wheel],
         cwd=venv.parent, timeout=1800)
    return venv


def installed(venv: Path) -> dict[str, str]:
    listing = _run([venv / "bin" / "python", "-m", "pip", "list", "--format", "json"], cwd=venv.parent).stdout
    return {canonical(p["name"]): p["version"] for p in json.loads(listing)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


@pytest.mark.slow
def test_installed_wheel_lists_models_and_runs_the_demo_outside_the_checkout(clean_venv, tmp_path):
    venv = clean_venv
    packages = installed(venv)
    for tool in ("pytest", "playwright", "rt-utils", "dicompyler-core", "trame-slicer", "slicer-core"):
        assert tool not in packages, f"{tool} is not a runtime dependency but was installed"
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    sizes = {name: megabytes(site / name) for name in ("torch", "vtkmodules")}
    print(f"clean install: {len(packages)} packages, {megabytes(venv):.0f} MB (torch {sizes['torch']:.0f} MB, "
          f"vtk {sizes['vtkmodules']:.0f} MB)")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([venv / "bin" / "python", "-c", "import LNStagingLib, LNStagingLib.resource_files as r; "
                                                 "print(LNStagingLib.__file__); print(r.resources_dir())"],
                 cwd=elsewhere).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    listing = _run([venv / "bin" / "lnstaging", "models", "list"], cwd=elsewhere, timeout=120).stdout
    assert "not available" not in listing, listing
    for task in ("seg", "cls", "identification", "patient"):
        assert f"[{task}] (default): {venv}" in listing, listing
    assert "trained on: synthetic phantom; body site: abdomen/pancreas" in listing

    demo = _run([venv / "bin" / "lnstaging", "demo", "--threads", "1", "--out", "demo"], cwd=elsewhere, timeout=900)
    assert "Report:" in demo.stdout and (elsewhere / "demo" / "report.html").is_file(), demo.stdout
    warnings = [line for line in demo.stderr.splitlines() if re.search(r"WARN\||^Warning: |\w+Warning: ", line)]
    assert not warnings, demo.stderr  # no third-party warnings (torch's TF32/oneDNN notice) in normal output
    provenance = json.loads((elsewhere / "demo" / "provenance.json").read_text())
    assert set(provenance["models_applied"]) == {"seg", "cls", "identification", "patient"}


@pytest.mark.slow
def test_declared_dependencies_alone_run_every_command_on_real_data(clean_venv, data_dir, tmp_path):
    """The soft-tissue sarcoma PET/CT of the IBSI validation set (Testing/Data/SOURCES.md), DICOM and NIfTI."""
    lnstaging = clean_venv / "bin" / "lnstaging"
    nifti, dicom = data_dir / "ibsi_validation_sts" / "nifti" / "STS_001", data_dir / "ibsi_validation_sts" / "dicom" / "STS_001"
    ct, pet, ct_dicom = nifti / "CT_image.nii.gz", nifti / "PET_image.nii.gz", dicom / "CT" / "image"
    here = tmp_path

    help_text = _run([lnstaging, "--help"], cwd=here).stdout
    commands = re.findall(r"^    ([a-z][a-z-]*)(?:\s|$)", help_text, re.M)  # the listing under COMMAND
    assert {"run", "candidates", "demo", "export", "report", "review", "models"} <= set(commands), commands
    for command in commands:  # every command's parser is built with the declared dependencies alone
        assert _run([lnstaging, command, "--help"], cwd=here).stdout.startswith(f"usage: lnstaging {command}")

    _run([lnstaging, "candidates", "--pet", dicom / "PET" / "image", "--ct", ct_dicom, "--out", "candidates.json"],
         cwd=here, timeout=600)
    assert json.loads((here / "candidates.json").read_text())["candidates"]

    _run([lnstaging, "run", "--ct", ct, "--pet", pet, "--tumor", nifti / "CT_mask.nii.gz", "--threads", "1", "--out",
          "results"], cwd=here, timeout=900)
    rows = json.loads((here / "results" / "candidates.json").read_text())["candidates"]
    assert rows and (here / "results" / "gtv_ln.nii.gz").is_file()

    for kind, name in (("rtstruct", "RS.dcm"), ("seg", "SEG.dcm")):  # RTSTRUCT contours need vtk: declared
        done = _run([lnstaging, "export", kind, "--ct-dicom", ct_dicom, "--results", "results", "--include-pending",
                     "--out", f"export/{name}", "--quiet"], cwd=here, timeout=600)
        assert re.search(rf"\b{len(rows)} ROIs?\b", done.stdout) and (here / "export" / name).stat().st_size > 0, \
            done.stdout

    done = _run([lnstaging, "report", "results", "--ct", ct, "--pet", pet, "--ct-dicom", ct_dicom], cwd=here,
                timeout=600)
    assert "Report:" in done.stdout

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    review = subprocess.run([str(lnstaging), "review", "results", "--ct", str(ct), "--pet", str(pet)], cwd=here,
                            env=env, capture_output=True, text=True, timeout=300)
    err = review.stderr.strip().splitlines()
    assert review.returncode == 2 and len(err) == 1, review.stderr[-3000:]
    assert err[0].startswith("lnstaging review: error:") and "pip install 'lnstaging[web]'" in err[0], err
