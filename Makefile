# lienthong — make targets. Everything runs from the project's own venv (.venv).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The tests use the services on loopback (DESIGN §7) unless TEST_SERVICES=containers, which
# leaves the URLs unset so that testcontainers starts RabbitMQ and PostgreSQL in Docker.
TEST_SERVICES ?= local
ifeq ($(TEST_SERVICES),local)
export LIENTHONG_TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export LIENTHONG_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
export LIENTHONG_TEST_MANAGEMENT_URL ?= http://guest:guest@127.0.0.1:15672
endif

.PHONY: install test lint demo bench bench-bigdocs chaos up down schemas clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@touch $(STAMP)

install: $(STAMP)

# Two pytest-xdist workers: most tests wait on a broker, a database or a process, so two run in
# about half the time on two cores. TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest tests -m "not chaos_long" -n $(TEST_WORKERS)

# The fault suite (tests/chaos): every case, the long ones too; prints one table at the end.
# It starts RabbitMQ nodes and a PostgreSQL cluster of its own (ports in tests/chaos/ports.py).
# The hostile-agency cases of issue 12 (marker hostile, on the shared services) run with it.
chaos: $(STAMP)
	$(BIN)/python -m pytest tests/chaos tests/integration tests/e2e -m "chaos or hostile" --durations=0 $(CHAOS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check schemas relay adapters lienthong tests
	$(BIN)/ruff format --check schemas relay adapters lienthong tests
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/python -m schemas.export schemas/json

demo: $(STAMP)
	$(BIN)/lienthong demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

# Large documents end to end (issue 17): e.g. BIGDOCS_ARGS="--size-mb 1000" or "--kill relay".
bench-bigdocs: $(STAMP)
	$(BIN)/python -m tests.bench.bigdocs $(BIGDOCS_ARGS)

up:
	docker compose -f deploy/docker-compose.yml up -d --build

down:
	docker compose -f deploy/docker-compose.yml down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
