# Every target creates .venv itself when missing; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test lint demo bench bench-quick soak clean test-py test-py-core

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.test-installed: $(PY) setup.cfg setup.py
	$(PIP) install -e '.[test]'
	@touch $@

$(VENV)/.dev-installed: $(PY) setup.cfg setup.py
	$(PIP) install -e '.[dev]'
	@touch $@

$(VENV)/.bench-installed: $(PY) setup.cfg setup.py
	$(PIP) install -e '.[bench]'
	@touch $@

$(VENV)/.demo-installed: $(PY) setup.cfg setup.py
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

# The suite on another interpreter from pyenv, in its own venv: `make test-py PYTHON_VERSION=3.9`
# (.venv-3.9) or 3.13 (.venv-3.13), PYTEST_ARGS as for `make test`. Without that interpreter it says
# so and succeeds (nothing to run).
PYENV_ROOT ?= $(HOME)/.pyenv
PYTHON_VERSION ?= 3.13
test-py:
	@py=$$(ls -d $(PYENV_ROOT)/versions/$(PYTHON_VERSION).*/bin/python 2>/dev/null | sort -V | tail -n 1); \
	if [ -z "$$py" ]; then echo "test-py: no Python $(PYTHON_VERSION) under $(PYENV_ROOT)/versions: skipped" >&2; exit 0; fi; \
	$(MAKE) --no-print-directory test PYTHON="$$py" VENV=.venv-$(PYTHON_VERSION) PYTEST_ARGS='$(PYTEST_ARGS)'

# What CI runs on each interpreter (about 560 tests): every module imported, the warning filters, values,
# configuration, retries, balancers and discovery, the CLI, the TLS helpers and an HTTPS client, and the
# registry contract (registration, subscriptions) on the memory backend and on etcd.
PY_CORE_TESTS := tests/test_imports.py tests/test_warnings.py tests/test_errors.py tests/test_naming.py \
	tests/test_config.py tests/test_retry.py tests/discovery/test_balancers.py tests/discovery/test_discovery.py \
	tests/cli/test_cli.py tests/testing/test_tls_and_auth_helpers.py tests/contrib/test_httpx.py \
	tests/registry/contract/test_registration.py tests/registry/contract/test_subscriptions.py
test-py-core:
	@$(MAKE) --no-print-directory test-py PYTHON_VERSION=$(PYTHON_VERSION) PYTEST_ARGS='-q -m "not slow" $(PY_CORE_TESTS)'

clean:
	rm -rf $(VENV) .venv-3.* build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
