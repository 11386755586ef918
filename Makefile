# sematic-metrics: `make run` serves with the embedded engine, `make test` tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
export SEMATIC_METRICS_DATA_DIR ?= $(CURDIR)/data

.PHONY: install run demo migrate lint format test test-server soak bench bench-quick bench-pipelines clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)
	PYTHON=$(PY) scripts/install_assets.sh

demo: install
	$(VENV)/bin/sematic-metrics demo

run: install
	$(VENV)/bin/sematic-metrics serve

migrate: install
	$(VENV)/bin/sematic-metrics migrate

lint: install
	$(VENV)/bin/ruff check sematic_metrics tests benchmarks
	$(VENV)/bin/ruff format --check sematic_metrics tests benchmarks
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix sematic_metrics tests benchmarks
	$(VENV)/bin/ruff format sematic_metrics tests benchmarks

test: lint
	$(PY) -m pytest

test-server: install
	SEMATIC_METRICS_TEST_CLICKHOUSE_URL=$${SEMATIC_METRICS_TEST_CLICKHOUSE_URL:?set it to a ClickHouse server URL} $(PY) -m pytest

soak: install
	SEMATIC_METRICS_SOAK=1 $(PY) -m pytest -s tests/test_reliability.py tests/test_hostile.py tests/test_auth.py

bench: install
	$(PY) benchmarks/run.py --install-peers

bench-quick: install
	$(PY) benchmarks/run.py --quick

bench-pipelines: install
	$(PY) benchmarks/bench_pipelines.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules sematic_metrics/service/static/vendor
