# Two entry points that work from a fresh clone: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv if missing and installs mfprune with all extras first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest -q -n 2

.PHONY: demo test test-slow install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ntk]'
	# neural-tangents' metadata pulls TensorFlow, which we never use (docs/install.md): install it alone.
	$(PY) -m pip install --quiet --no-deps neural-tangents==0.6.5
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mfprune demo --out runs/demo

# The suite runs in float32 (JAX's default), then the numerics (tests/theory) again in float64 (JAX_ENABLE_X64=1);
# the CLI and report tests do not depend on the precision.
test: $(STAMP)
	$(PYTEST)
	JAX_ENABLE_X64=1 $(PYTEST) tests/theory

# Slow tests (larger Monte-Carlo networks); CI runs them after `make test` when time allows.
test-slow: $(STAMP)
	$(PYTEST) -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
