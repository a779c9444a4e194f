# tumorseg: two commands to start.  `make run` runs the course, `make test` runs every test;
# `make lab` opens the course in JupyterLab; `make check` is the fast tier (lint + the tests
# not marked slow) to run while changing code.
# Both create or refresh .venv from the pinned requirements.txt by themselves.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   := data/BraTS-Data
CASES  ?= 10
SEED   ?= 0
NB     := tumorseg/course/notebooks/Brain_Tumor_Segmentation.ipynb
export TF_CPP_MIN_LOG_LEVEL := 2
export KERAS_BACKEND := tensorflow
export PYTHONHASHSEED := 0

.PHONY: venv data patches run lab check test lint bench release compat clean help

help:
	@echo "make run    - run the course end to end on the embedded synthetic data"
	@echo "make lab    - open the course (student notebook) in JupyterLab"
	@echo "make check  - the fast tier: lint + the tests not marked slow (a few minutes)"
	@echo "make test   - lint + unit tests + notebook (nbval) + grader self-checks"
	@echo "make bench  - print speed and memory figures"
	@echo "make compat - the Colab bootstrap + notebook on Colab's package set and the oldest allowed"

# The stamp is newer than requirements.txt and pyproject.toml once the venv matches them.
# -qq: pip prints errors only.  Its warnings here are setuptools' notes on editable installs
# and on its pyproject support, and complaints about the machine's own pip configuration,
# none of which a student can act on; a failed install still prints why and stops make.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -r requirements.txt
	$(BIN)/python -m pip install -qq --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# Synthetic sample data: skips cases that are already valid, so it is cheap to rerun.
data: $(STAMP)
	$(BIN)/tumorseg synth --out $(DATA) --cases $(CASES) --seed $(SEED)

patches: data
	$(BIN)/tumorseg patches --data $(DATA) --out $(DATA)/processed

# The course end to end: an overview figure of the data, then the notebook executed headless.
run: patches
	@mkdir -p build
	$(BIN)/tumorseg overview --data $(DATA) --out build/overview.png
	$(BIN)/python scripts/run_notebook.py $(NB) build/Brain_Tumor_Segmentation.html

# The course in JupyterLab, on the student notebook; Ctrl+C twice stops the server.
# LAB_ARGS passes options, e.g. `make lab LAB_ARGS="--no-browser --port 8899"`.  LAB_QUIET has
# the server give each kernel CurveZMQ keys, so ipykernel does not warn on this terminal that
# it "is running over TCP without encryption", and gives the server's log handler a filter that
# drops tornado's one false alarm "The websocket_ping_timeout (90000) cannot be longer than the
# websocket_ping_interval (30000)" (jupyter_server's keep-alive in milliseconds read as tornado's
# seconds: no ping setting silences it without breaking or disabling the keep-alive; see
# tumorseg.quiet.KeepaliveUnitsFilter); the notebook is trusted first, so the server does not
# warn that it is not (tests/test_browser.py starts its server the same way).
STUDENT_NB := notebooks/Brain_Tumor_Segmentation.ipynb
LAB_ARGS   ?=
LAB_QUIET  := --MappingKernelManager.transport_encryption=auto '--ServerApp.logging_config={"filters": {"keepalive_units": {"()": "tumorseg.quiet.KeepaliveUnitsFilter"}}, "handlers": {"console": {"filters": ["keepalive_units"]}}}'
lab: patches
	@$(BIN)/jupyter trust $(STUDENT_NB) > /dev/null
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_QUIET) $(LAB_ARGS) $(STUDENT_NB)

lint: $(STAMP)
	$(BIN)/ruff check tumorseg tests util.py scripts benchmarks
	$(BIN)/ruff format --check tumorseg tests util.py scripts benchmarks

# The fast tier: no data build, no slow test (kernels, training, whole-scan predictions, the
# notebook); tests that need the sample data skip until `make data` / `make patches` built it.
check: lint
	$(BIN)/python -m pytest -m "not slow" --durations=15 tests

# The full suite (what CI runs); --durations lists the slowest tests.
test: patches lint
	$(BIN)/python -m pytest --durations=15 tests
	$(BIN)/python -m pytest --durations=15 --nbval-lax --nbval-current-env -p no:cacheprovider $(NB)

# The hardware first (CPU model, its flags, oneDNN on or off): every figure below depends on it.
bench: patches
	@$(BIN)/tumorseg hardware
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

release: $(STAMP)
	$(BIN)/tumorseg release

# The notebook as Colab runs it, on tests/compat/*.txt (Colab's package set, the oldest versions
# pyproject.toml allows): fresh venvs under COMPAT_DIR, the bootstrap cell cloning this checkout's
# committed HEAD.  Slow (downloads TensorFlow twice; the sets install side by side); not part of
# `make test`, but CI (.ci/run) runs it after `make test`.
COMPAT_DIR ?= /tmp/tumorseg-compat
compat: $(STAMP)
	$(BIN)/python scripts/compat.py --workdir $(COMPAT_DIR)

clean:
	rm -rf build .pytest_cache .ruff_cache
