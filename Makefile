# make demo / make test: each creates .venv from requirements.lock when missing, then runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean browser test-slicer-stable

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lnstaging demo --out demo_output --overwrite

# The browser tests drive Debian's chromium (never a downloaded browser). Installed here when missing and root;
# in CI (CI=true) a failed install fails the run, elsewhere the browser tests are skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { [ "$$CI" = true ] && echo "chromium could not be installed" && exit 1; } || \
	  echo "chromium is not installed: browser tests will be skipped (apt-get install chromium)"

test: $(STAMP) browser
	VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow $(BIN)/python -m pytest -q -p no:cacheprovider Testing

# The scene tests again on Slicer's current stable release (slicer-core 5.12, same vtk 9.6.0 as the pinned 5.11),
# in a small separate venv: the lock file's pins with slicer-core swapped, and only what the scene tests import.
STABLE_VENV := .venv-slicer-stable
STABLE_SLICER := slicer-core==5.12.4.0
STABLE_STAMP := $(STABLE_VENV)/.installed
SCENE_TESTS := Testing/test_scene_geometry.py Testing/test_scene_review.py Testing/test_scene_module.py \
	Testing/test_slicer_api_contract.py Testing/test_slicer_export.py Testing/test_slicer_without_torch.py \
	Testing/test_slicer_module_logic.py

$(STABLE_STAMP): requirements.lock Makefile
	test -x $(STABLE_VENV)/bin/python || $(PY) -m venv $(STABLE_VENV)
	sed 's/^slicer-core==.*/$(STABLE_SLICER)/' requirements.lock > $(STABLE_VENV)/constraints.txt
	$(STABLE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(STABLE_VENV)/bin/python -m pip install --quiet -c $(STABLE_VENV)/constraints.txt \
	  slicer-core vtk numpy scipy simpleitk pytest pytest-timeout pillow packaging
	touch $(STABLE_STAMP)

test-slicer-stable: $(STABLE_STAMP)
	$(STABLE_VENV)/bin/python -c "from importlib.metadata import version as v; import vtk; \
	  print('slicer-core', v('slicer-core'), 'vtk', vtk.vtkVersion.GetVTKVersion())"
	PYTHONPATH=$(CURDIR) VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow $(STABLE_VENV)/bin/python -m pytest -q \
	  -p no:cacheprovider $(SCENE_TESTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/paper_size_benchmark.py --size 96x96x64

clean:
	rm -rf $(VENV) $(STABLE_VENV) demo_output
