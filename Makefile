# driftline — the two set-up commands are `make demo` and `make test`.
# Both create .venv and install everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: venv demo test lint format typecheck bench bench-kafka clean compose-tool kafka-jars kafka chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The Rust extension (native/: PyO3, built by maturin with cargo): the fast path of the
# prediction/label codec (schemas/native.py). Rebuilt when its sources change.
NATIVE_STAMP := $(VENV)/.native-installed
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)

$(NATIVE_STAMP): $(NATIVE_SOURCES) | $(STAMP)
	$(BIN)/python -m pip install --quiet ./native
	touch $(NATIVE_STAMP)

venv: $(STAMP) $(NATIVE_STAMP)

demo: venv
	$(BIN)/driftline demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy detectors schemas

test: venv lint typecheck kafka-jars chromium compose-tool
	$(BIN)/python -m pytest -q

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A real Apache Kafka 4.x broker for the tests: jars from Maven Central into .cache/ (once),
# see tests/support/kafka_broker.py. `make kafka` runs one in the foreground for development.
KAFKA_PORT ?= 9092
kafka-jars: venv
	$(BIN)/python tests/support/kafka_broker.py --resolve-only

kafka: kafka-jars
	$(BIN)/python tests/support/kafka_broker.py --port $(KAFKA_PORT)

# Headless Chromium for the report's browser test (tests/driftline/test_report.py): Debian's
# package (CI runs as root). Playwright cannot download browsers here.
chromium:
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# Debian's docker-compose (1.29) validates docker-compose.yml (tests/test_compose.py); there is
# no Docker engine here, the file is for users.
compose-tool:
	command -v docker-compose >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose)

bench: venv
	$(BIN)/python benchmarks/bench_detectors.py
	$(BIN)/python benchmarks/bench_embedded.py
	$(BIN)/python benchmarks/bench_merge_runs.py

# the distributed runtime on a real broker (started by the benchmark; jars as for the tests)
bench-kafka: venv kafka-jars
	$(BIN)/python benchmarks/bench_kafka.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .driftline
