# One entry point for people and CI.  `make test` sets everything up on a fresh
# machine (Python 3.11 + PyPI), then runs lint, types and the three test tiers.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install up test lint typecheck unit integration e2e faults cluster bench bench-coder bench-live bench-memory schemas clean redis-server chromium test-deep soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian's redis-server (built with TLS) for the Redis TLS tests, installed with apt-get when
# missing; INSIGHTS_TEST_NO_APT=1 installs nothing and those tests are skipped.
redis-server:
	sh tests/integration/install_redis_server.sh

# Debian's chromium for the dashboard's browser test, installed with apt-get when missing;
# INSIGHTS_TEST_NO_APT=1 installs nothing and that test is skipped.
chromium:
	sh tests/e2e/install_chromium.sh

# Broker + Redis (embedded) + worker + API with demo data on http://127.0.0.1:8080
up: $(STAMP)
	$(BIN)/insights up --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# The benches are not run by CI, so type-checking them is what keeps them from rotting.
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy bench

# pytest exits 5 when it collected no test: treat that as a failure, never a pass.
test: lint typecheck redis-server chromium
	$(BIN)/pytest -q -ra; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# Hostile requests in depth (nightly or on demand; not part of `make test`): schemathesis with
# 1,000 generated cases per operation, 1,000 fuzzed raw requests, the oversized-request checks
# and the deep-only ones (a few minutes). INSIGHTS_SCHEMATHESIS_CASES=5000 for more.
test-deep: $(STAMP)
	INSIGHTS_SCHEMATHESIS_CASES=$${INSIGHTS_SCHEMATHESIS_CASES:-1000} \
		$(BIN)/pytest -q -s -ra tests/integration/test_schemathesis.py

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) redis-server
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) chromium
	$(BIN)/pytest -q tests/e2e

# The fault suite alone (tests/faults, part of `make test`): workers SIGKILLed during 150,000
# events, a two-worker failover, Redis stopped 20 s, the broker restarted empty, SIGTERM while
# starting, hostile events; the runs with events end with every endpoint against the oracle.
faults: $(STAMP)
	$(BIN)/pytest -q -m faults

# The Redis Cluster tier alone (tests/cluster, part of `make test`): three embedded masters with
# a replica each on 127.0.0.1; the golden fixture and the oracle through worker and API, the
# spread of a day over the masters, and a master SIGKILLed during ingest.
cluster: $(STAMP)
	$(BIN)/pytest -q -m cluster

bench: $(STAMP)
	$(BIN)/python bench/bench_decoding.py
	$(BIN)/python bench/bench_worker.py
	$(BIN)/python bench/bench_api.py

# Dashboards polling while events stream into the days they show (own broker, Redis,
# worker and API processes on 127.0.0.1; a few minutes). ARGS="--json /tmp/live.json" etc.
bench-live: $(STAMP)
	$(BIN)/python bench/bench_live.py $(ARGS)

# Load (on demand): 5,000 events/s through Kafka and 50 API clients for 10 minutes, with its own
# broker, Redis, worker and API on 127.0.0.1; errors, RSS over time, consumer lag and
# produce -> visible latency. ARGS="--minutes 1" for a short run.
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(ARGS)

# Coder's own PostgreSQL insights queries vs this service on the same generated data (~2-3 min;
# starts its own PostgreSQL from the pgserver wheel and its own Redis, stops both at the end).
# ARGS="--users 1000" etc.
bench-coder: $(STAMP)
	$(BIN)/python bench/bench_coder_pg.py $(ARGS)

# Redis memory of the rollups per user-active-day (before / after the dedupe horizon, per key
# family) and its growth with users and days, with 30-day query times; ~3 min on 2 cores,
# plot in docs/memory.png. ARGS="--quick" (~20 s), ARGS="--days 7,30,90,365" (~7-8 min) etc.
bench-memory: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/bench_memory.py $(ARGS)

# The JSON Schemas of the input topics (docs/schemas/<topic>.json), generated from the
# field table in streams/decoding/schema.py; tests/unit/test_schemas.py fails when they are stale.
schemas: $(STAMP)
	$(BIN)/insights schema --write docs/schemas

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
