# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv demo test test-db studies bench dev e2e clean types typecheck

$(BIN)/irt-pipeline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/irt-pipeline

$(DAGSTER_HOME):
	mkdir -p $(DAGSTER_HOME)

## Seed the embedded database with the demo bank, materialize every asset, print the summary.
demo: venv $(DAGSTER_HOME)
	$(BIN)/irt-pipeline migrate
	$(BIN)/irt-pipeline seed-demo --bank demo
	$(BIN)/irt-pipeline calibrate --bank demo

## The whole test suite (database tests on the embedded PostgreSQL unless IRT_TEST_DATABASE_URL is set).
test: venv
	$(BIN)/pytest -q

## The SQL-level database tests (storage, reliability: migrations, RLS, leases, faults; the
## snapshot and stale-publish guards, the production instance) without the slow studies: CI's second pass, on the system
## PostgreSQL 15, after every test has run once on the embedded PostgreSQL 16.
test-db: venv
	$(BIN)/pytest -q -m "db and not slow" irt_pipeline_tests/storage irt_pipeline_tests/reliability \
		irt_pipeline_tests/defs/calibration/test_stale_publish.py irt_pipeline_tests/defs/test_instance.py

## The long simulation studies (SE coverage over 100 replications, two cohorts over ten seeds):
## minutes each, so not in every CI run (pyproject's addopts leave them out of plain pytest).
studies: venv
	$(BIN)/pytest -q -m study

bench: venv
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_priors.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_storage.py
	$(BIN)/python benchmarks/bench_linking.py
	$(BIN)/python benchmarks/bench_quality.py
	$(BIN)/python benchmarks/bench_scale.py --sizes 1m

## The Dagster UI and daemon (one command) on http://127.0.0.1:3000: instance in DAGSTER_HOME
## (.dagster_home, SQLite, configured by a copy of the root dagster.yaml), data in the embedded database.
dev: venv $(DAGSTER_HOME)
	@grep -qs '^run_monitoring:' $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/irt-pipeline migrate
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## The end-to-end tests: the browser test (`dagster dev` on the demo bank, driven in headless
## Debian Chromium: apt-get install chromium chromium-driver; screenshots in e2e-artifacts/), and
## the production topology (irt_pipeline_tests/deploy/: the code server, the webserver and the
## daemon on deploy/*.yaml, dagster-postgres on the server of IRT_TEST_DATABASE_URL, else the
## embedded one; logs in e2e-artifacts/).
e2e: venv
	$(BIN)/pytest -q -m e2e

## Regenerate packages/types/src/student/irt.types.ts from irt_pipeline/models.py.
types: venv
	$(BIN)/python scripts/generate_types.py

## Type-check the generated TypeScript with tsc (TypeScript from the npm registry).
typecheck:
	cd packages/types && npm ci --no-audit --no-fund && npx tsc --noEmit -p .

clean:
	rm -rf $(VENV) .irt .dagster_home *.egg-info
