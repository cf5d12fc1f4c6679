# make demo: creates .venv from requirements.lock (runtime pins) when missing, then runs.
# make test: the same .venv plus requirements-test.lock (the test tools), then the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test venv bench clean browser test-slicer-stable

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.lock
	$(BIN)/python -m pip install --quiet -r requirements.lock -r requirements-test.lock
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/lnstaging demo --out demo_output --overwrite

# The browser tests drive Debian's chromium (never a downloaded browser). Installed here when missing and root;
# in CI (CI=true) a failed install fails the run, elsewhere the browser tests are skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { [ "$$CI" = true ] && echo "chromium could not be installed" && exit 1; } || \
	  echo "chromium is not installed: browser tests will be skipped (apt-get install chromium)"

test: $(TEST_STAMP) browser
	VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow $(BIN)/python -m pytest -q -p no:cacheprovider --durations=30 Testing

# The scene tests again on Slicer's current stable release (slicer-core 5.12, same vtk 9.6.0 as the pinned 5.11),
# in a small separate venv: the lock file's pins with slicer-core swapped, and only what the scene tests import.
STABLE_VENV := .venv-slicer-stable
STABLE_SLICER := slicer-core==5.12.4.0
STABLE_STAMP := $(STABLE_VENV)/.installed
SCENE_TESTS := Testing/test_scene_geometry.py Testing/test_scene_review.py Testing/test_scene_module.py \
	Testing/test_slicer_api_contract.py Testing/test_slicer_export.py Testing/test_slicer_without_torch.py \
	Testing/test_slicer_module_logic.py

$(STABLE_STAMP): requirements.lock requirements-test.lock Makefile
	test -x $(STABLE_VENV)/bin/python || $(PY) -m venv $(STABLE_VENV)
	cat requirements.lock requirements-test.lock | sed 's/^slicer-core==.*/$(STABLE_SLICER)/' > $(STABLE_VENV)/constraints.txt
	$(STABLE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(STABLE_VENV)/bin/python -m pip install --quiet -c $(STABLE_VENV)/constraints.txt \
	  slicer-core vtk numpy scipy simpleitk pytest pytest-timeout pillow packaging
	touch $(STABLE_STAMP)

test-slicer-stable: $(STABLE_STAMP)
	$(STABLE_VENV)/bin/python -c "from importlib.metadata import version as v; import vtk; \
	  print('slicer-core', v('slicer-core'), 'vtk', vtk.vtkVersion.GetVTKVersion())"
	PYTHONPATH=$(CURDIR) VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow $(STABLE_VENV)/bin/python -m pytest -q \
	  -p no:cacheprovider $(SCENE_TESTS)

# The library, export and scene tests with the Python packages Slicer 5.10 ships (numpy 2.0.2, scipy 1.13.1,
# pydicom 2.4.4, pillow 11.2.1, SimpleITK 2.5.2: Testing/slicer_versions/slicer-5.10.txt, read from Slicer's
# SuperBuild at v5.10.0), on slicer-core 5.11.0.6 (the oldest wheel on PyPI: there is no 5.10 wheel). The lock
# file's other pins stay; highdicom is left to pip, which picks what installs beside pydicom 2.4 (0.22), as
# Slicer 5.10's pip_install with the module's constraints does. Not run: DICOM SEG reading and writing (highdicom
# 0.22 predates numpy 2; both are refused in one sentence there: test_slicer_packages.py; the module uses neither)
# and the torch tests (torch is not installed here).
S510_VENV := .venv-slicer-510
S510_PINS := Testing/slicer_versions/slicer-5.10.txt
S510_STAMP := $(S510_VENV)/.installed
S510_TESTS := Testing/test_slicer_packages.py Testing/test_export_rtstruct.py \
	Testing/test_export_errors.py Testing/test_export_review_rule.py Testing/test_io_readers.py Testing/test_io_suv.py \
	Testing/test_io_geometry.py Testing/test_scene_geometry.py Testing/test_scene_review.py \
	Testing/test_slicer_export.py Testing/test_slicer_flows.py Testing/test_slicer_dicom_export.py \
	Testing/test_slicer_sample_data.py Testing/test_slicer_api_contract.py Testing/test_slicer_extension_index.py \
	Testing/test_slicer_robustness.py Testing/test_slicer_pet_only.py
S510_DESELECT := --deselect Testing/test_io_readers.py::test_qin_headneck_seg_segments \
	--deselect Testing/test_export_errors.py::test_cli_export_rtstruct_and_seg

$(S510_STAMP): requirements.lock requirements-test.lock $(S510_PINS) Makefile
	test -x $(S510_VENV)/bin/python || $(PY) -m venv $(S510_VENV)
	cat requirements.lock requirements-test.lock | grep -v -i -E '^(numpy|scipy|pydicom|pillow|simpleitk|highdicom)==' \
	  > $(S510_VENV)/constraints.txt
	grep '==' $(S510_PINS) >> $(S510_VENV)/constraints.txt
	$(S510_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(S510_VENV)/bin/python -m pip install --quiet -c $(S510_VENV)/constraints.txt numpy scipy pydicom pillow \
	  SimpleITK slicer-core vtk pytest pytest-timeout packaging "highdicom>=0.22" rt-utils dicompyler-core matplotlib
	touch $(S510_STAMP)

# The module's flow, Sample Data, robustness and PET-only tests also run on Slicer's stable release (make test-slicer-stable).
SCENE_TESTS += Testing/test_slicer_flows.py Testing/test_slicer_sample_data.py Testing/test_slicer_robustness.py \
	Testing/test_slicer_pet_only.py

.PHONY: test-slicer-510
test-slicer-510: $(S510_STAMP)
	PYTHONPATH=$(CURDIR) VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow LNSTAGING_SLICER_PINS=$(CURDIR)/$(S510_PINS) \
	  $(S510_VENV)/bin/python -m pytest -q -p no:cacheprovider --durations=12 $(S510_DESELECT) $(S510_TESTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/paper_size_benchmark.py --size 96x96x64

clean:
	rm -rf $(VENV) $(STABLE_VENV) $(S510_VENV) demo_output
