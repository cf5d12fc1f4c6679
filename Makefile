# make demo / make test: each creates .venv from requirements.lock when missing, then runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean browser

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lnstaging demo --out demo_output

# The browser tests drive Debian's chromium (never a downloaded browser). Installed here when missing and root;
# in CI (CI=true) a failed install fails the run, elsewhere the browser tests are skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { [ "$$CI" = true ] && echo "chromium could not be installed" && exit 1; } || \
	  echo "chromium is not installed: browser tests will be skipped (apt-get install chromium)"

test: $(STAMP) browser
	VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow $(BIN)/python -m pytest -q -p no:cacheprovider Testing

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_output
