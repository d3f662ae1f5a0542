# Every target creates .venv itself when missing; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test lint demo bench bench-quick soak clean dist smoke

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.test-installed: $(PY) pyproject.toml setup.cfg setup.py fyerreg/__init__.py
	$(PIP) install -e '.[test,bench]'
	@touch $@

$(VENV)/.dev-installed: $(PY) pyproject.toml setup.cfg setup.py fyerreg/__init__.py
	$(PIP) install -e '.[dev]'
	@touch $@

$(VENV)/.bench-installed: $(PY) pyproject.toml setup.cfg setup.py fyerreg/__init__.py
	$(PIP) install -e '.[bench]'
	@touch $@

$(VENV)/.demo-installed: $(PY) pyproject.toml setup.cfg setup.py fyerreg/__init__.py
	$(PIP) install -e '.[etcd-server]'
	@touch $@

test: $(VENV)/.test-installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check fyerreg tests examples bench tools
	$(PY) -m mypy

demo: $(VENV)/.demo-installed
	$(PY) examples/demo.py

# Starts its own etcd, runs every benchmark, prints the table, writes BENCHMARKS.md and bench/plots/.
# BENCH_ARGS passes options: make bench BENCH_ARGS="--only churn,select" (see python -m bench --help).
bench: $(VENV)/.bench-installed
	$(PY) -m bench $(BENCH_ARGS)

# A few minutes; written under bench/out/ so the committed full results stay as they are.
bench-quick: $(VENV)/.bench-installed
	$(PY) -m bench --quick $(BENCH_ARGS)

# Not in CI (a 30-second version runs in the test suite): `make soak SOAK_ARGS="--seconds 60"`.
soak: $(VENV)/.test-installed
	$(PY) tools/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# An sdist, then a wheel built from that sdist, in dist/ (what a release uploads).
dist: $(VENV)/.dev-installed
	rm -rf dist
	$(PY) -m build --quiet --outdir dist .

# Installs the wheel into a fresh venv in a temp dir and runs the quickstart, `fyerreg --version`,
# the no-gRPC import and the LICENSE check; then the same for `pip install .` of a clean export of HEAD.
smoke: dist
	$(PY) tools/smoke.py dist
