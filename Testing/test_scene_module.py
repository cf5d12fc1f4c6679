"""The Slicer module outside Slicer: it compiles, every widget the Python uses exists in the .ui, the parameter
names the .ui binds exist in the parameter node, CMake ships every file, the icon and requirements are sane."""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "LNStaging"
PY_FILES = [MODULE / "LNStaging.py", *sorted((MODULE / "LNStagingModule").glob("*.py"))]


def ui_widgets() -> dict[str, str]:
    tree = ET.parse(MODULE / "Resources" / "UI" / "LNStaging.ui")
    return {w.get("name"): w.get("class") for w in tree.iter("widget")}


@pytest.mark.parametrize("path", PY_FILES, ids=lambda p: p.name)
def test_module_files_compile(path):
    compile(path.read_text(), str(path), "exec")


def test_every_ui_name_the_widget_uses_exists():
    source = (MODULE / "LNStagingModule" / "widget.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert len(used) > 20
    missing = used - set(ui_widgets())
    assert not missing, f"widgets used in widget.py but absent from LNStaging.ui: {sorted(missing)}"


def test_ui_parameter_bindings_match_the_parameter_node():
    tree = ET.parse(MODULE / "Resources" / "UI" / "LNStaging.ui")
    bound = {p.find("string").text for p in tree.iter("property") if p.get("name") == "SlicerParameterName"}
    fields = set()
    for node in ast.walk(ast.parse((MODULE / "LNStagingModule" / "parameters.py").read_text())):
        if isinstance(node, ast.ClassDef) and node.name == "LNStagingParameterNode":
            fields = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    assert bound and bound <= fields, bound - fields


def test_ui_custom_widgets_declared():
    tree = ET.parse(MODULE / "Resources" / "UI" / "LNStaging.ui")
    declared = {c.find("class").text for c in tree.iter("customwidget")}
    used = {cls for cls in ui_widgets().values() if not cls.startswith("Q")}
    assert used <= declared, used - declared


def test_module_metadata_and_disclaimer():
    source = (MODULE / "LNStaging.py").read_text()
    tree = ast.parse(source)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "LNStaging" in classes
    assert "LNStagingTest" in imported  # Slicer finds <Module>Test by name in LNStaging.py's namespace
    selftest = ast.parse((MODULE / "LNStagingModule" / "selftest.py").read_text())
    assert "LNStagingTest" in {n.name for n in selftest.body if isinstance(n, ast.ClassDef)}
    assert "LNStagingWidget" in source and "LNStagingLogic" in source
    assert 'self.parent.title = "LNStaging"' in source
    assert "not for clinical use" in source.lower()
    assert len(source.splitlines()) < 160  # thin: the work lives in LNStagingLib and LNStagingModule


def test_logic_has_no_dialogs():
    logic = (MODULE / "LNStagingModule" / "logic.py").read_text()
    for dialog in ("errorDisplay", "confirmOkCancelDisplay", "infoDisplay", "QFileDialog", "QMessageBox", "import qt"):
        assert dialog not in logic


def test_cmake_ships_every_module_file_and_the_library():
    module_cmake = (MODULE / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule" in module_cmake
    for path in PY_FILES[1:]:
        assert f"LNStagingModule/{path.name}" in module_cmake, path.name
    for resource in ("Resources/UI/${MODULE_NAME}.ui", "Resources/Icons/${MODULE_NAME}.png", "Resources/requirements.txt"):
        assert resource in module_cmake
    top = (ROOT / "CMakeLists.txt").read_text()
    for needle in ("set(EXTENSION_NAME LNStaging)", 'set(EXTENSION_DEPENDS "SlicerRT PyTorch")',
                   "set(LNStaging_MINIMUM_SLICER_VERSION 5.10)", "find_package(Slicer ${LNStaging_MINIMUM_SLICER_VERSION} REQUIRED)",
                   "include(${Slicer_USE_FILE})", "add_subdirectory(LNStaging)",
                   "ctkMacroCompilePythonScript(", "LNStagingLib/*.py", "Resources/DemoCase/*", "Resources/models/*.pt",
                   "DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}",
                   "INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}", "include(${Slicer_EXTENSION_CPACK})",
                   "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY",
                   "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION"):
        assert needle in top, needle
    assert "install(DIRECTORY LNStagingLib" not in top  # install-only copies left the build tree without the library


def test_cmake_globs_ship_every_library_and_resource_file():
    """Every file the library needs at run time (its .py/.json/.html, and all of Resources/: catalogue, schema,
    demo weights, model cards, demo case) matches a glob of the top-level CMakeLists.txt."""
    import fnmatch
    import subprocess

    top = (ROOT / "CMakeLists.txt").read_text()
    globs = re.findall(r"\$\{CMAKE_CURRENT_SOURCE_DIR\}/([\w/.*-]+\*[\w.]*)", top)
    assert "LNStagingLib/*.py" in globs and "Resources/DemoCase/*" in globs
    tracked = subprocess.run(["git", "ls-files", "LNStagingLib", "Resources"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    needed = [f for f in tracked if f.startswith("Resources/") or f.endswith((".py", ".json", ".html"))]
    assert len(needed) > 50
    # GLOB_RECURSE: '*' also crosses folders, as fnmatch's '*' does
    missed = [f for f in needed if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not missed, f"not shipped by CMakeLists.txt: {missed}"


def test_extension_urls_name_files_in_the_repository():
    """The icon and screenshot URLs point at raw files of this repository: each must exist here."""
    top = (ROOT / "CMakeLists.txt").read_text()
    urls = re.findall(r'set\(EXTENSION_(?:ICONURL|SCREENSHOTURLS) "([^"]+)"\)', top)
    assert len(urls) == 2
    prefix = "https://raw.githubusercontent.com/lnstaging/LNStaging/main/"
    for url in " ".join(urls).split():
        assert url.startswith(prefix), url
        path = ROOT / url[len(prefix):]
        assert path.is_file(), f"{url} names {path.relative_to(ROOT)}, which is not in the repository"
    docs = (ROOT / "docs" / "SLICER.md").read_text()
    assert "5.10" in docs and "5.12" in docs and "images/slicer-review.png" in docs
    assert "5.10" in (ROOT / "README.md").read_text()


def test_icon_is_128_square_png():
    from PIL import Image

    with Image.open(MODULE / "Resources" / "Icons" / "LNStaging.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)


def test_requirements_never_touch_slicers_own_packages():
    import sys

    sys.path.insert(0, str(MODULE))
    from LNStagingModule import dependencies

    requirements = dependencies.read_requirements()
    assert requirements and not dependencies.protected_in(requirements)
    assert dependencies.protected_in(["numpy>=2", "SimpleITK", "scipy"]) == ["numpy>=2", "SimpleITK"]
    assert dependencies.missing(["scipy>=1.0", "pytest"]) == []  # installed here
    assert dependencies.missing(["scipy>=999"]) == ["scipy>=999"]
    assert dependencies.missing(["no-such-package-lnstaging"]) == ["no-such-package-lnstaging"]
    assert "numpy==" in dependencies.constraints_text()


STUB_IMPORT = r'''
import LNStaging
assert LNStaging.LNStagingWidget.__name__ == "LNStagingWidget"
assert LNStaging.LNStagingLogic.__name__ == "LNStagingLogic"
logic = LNStaging.LNStagingLogic()
assert isinstance(logic.missingDependencies(), list)
from LNStagingModule.parameters import LNStagingParameterNode
print("imported", LNStaging.LNStagingTest.__name__)
'''


def test_module_imports_with_stubbed_qt(tmp_path):
    """Import LNStaging.py (and so widget, logic, parameters) with qt and the Slicer app parts stubbed: catches
    broken imports and names evaluated at import time; the widget's behaviour itself only runs inside Slicer."""
    from slicer_child import run_module_child

    done = run_module_child(tmp_path, STUB_IMPORT, name="stub_import.py", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported LNStagingTest" in done.stdout
