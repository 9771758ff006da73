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
# the CLI and report tests do not depend on the precision. Everything outside tests/theory builds many small models
# and spends its time compiling, not running: XLA's backend optimisation level 0 halves that (measured: 552 s
# against 808 s for the float32 suite on two cores) and changes results only in the last bits. tests/theory runs
# heavy numerics at the default level, the one users get.
FAST_COMPILE := XLA_FLAGS="--xla_backend_optimization_level=0 $(XLA_FLAGS)"

test: $(STAMP)
	$(FAST_COMPILE) $(PYTEST) --ignore=tests/theory
	$(PYTEST) tests/theory
	JAX_ENABLE_X64=1 $(PYTEST) tests/theory

# Slow tests (larger Monte-Carlo networks); CI runs them after `make test` when time allows.
test-slow: $(STAMP)
	$(FAST_COMPILE) $(PYTEST) -m slow --ignore=tests/theory
	$(PYTEST) -m slow tests/theory

clean:
	rm -rf $(VENV) runs .pytest_cache
