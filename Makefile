# coldchain: `make demo` runs the whole system; `make test` runs every check.
# Both set up what they need first (Debian packages as root, a virtualenv in .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := mosquitto mosquitto-clients
# The tests also run PostgreSQL clusters of their own (as the unprivileged `postgres` user).
TEST_DEB_PACKAGES := postgresql chromium chromium-driver

.PHONY: setup system-packages test-packages demo screenshots test lint typecheck pytest pytest-postgresql test-faults bench bench-quick bench-smoke bench-layout clean

$(BIN)/python:
	$(PYTHON) -m venv --system-site-packages $(VENV) || { \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv && \
	  $(PYTHON) -m venv --system-site-packages $(VENV); }

system-packages:
	@$(MAKE) --no-print-directory deb-install PACKAGES="$(DEB_PACKAGES)"

test-packages:
	@$(MAKE) --no-print-directory deb-install PACKAGES="$(TEST_DEB_PACKAGES)"

deb-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

setup: system-packages $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'

demo: setup
	$(BIN)/python -m coldchain demo

lint: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

typecheck: setup
	$(BIN)/python -m mypy coldchain

pytest: setup test-packages
	$(BIN)/python -m pytest

# The same suite with each test's database on PostgreSQL (a cluster the tests start
# themselves). The pure unit tests (no database) and the demo (always SQLite) run once,
# above.
pytest-postgresql: setup test-packages
	COLDCHAIN_TEST_ENGINE=postgresql $(BIN)/python -m pytest --ignore=tests/unit \
	  --deselect tests/e2e/test_demo.py

test: lint typecheck bench-smoke pytest pytest-postgresql

# The fault tests alone (tests/faults: kill -9 of workers and broker, a locked or full
# database, wrong clocks), on SQLite then PostgreSQL: about a minute each. `make test` runs
# them already, once per engine, within `pytest` and `pytest-postgresql`.
test-faults: setup test-packages
	$(BIN)/python -m pytest -m faults tests/faults
	COLDCHAIN_TEST_ENGINE=postgresql $(BIN)/python -m pytest -m faults tests/faults

screenshots: setup test-packages
	$(BIN)/python tools/screenshots.py

# The benchmark suite (ingest, latency, queries, growth) on SQLite and PostgreSQL: about an
# hour at the issue's sizes. Results: bench/results/*.json and summary.md.
bench: setup test-packages
	$(BIN)/python bench/run.py

# The same suite at small sizes (a couple of minutes): a smoke run, not the figures.
bench-quick: setup test-packages
	$(BIN)/python bench/run.py --quick

# Part of `make test`: the suite's code still runs end to end (it fails on an error, not on a
# missed target: figures from a loaded CI machine judge nothing).
bench-smoke: setup test-packages
	$(BIN)/python bench/run.py --quick --repeat 1 --latency-s 3 --out var/bench-smoke
	$(BIN)/python bench/readings_layout.py --rows 20000 --batches 4 --rounds 1 --repeat 2 \
	  --out var/bench-smoke/readings_layout.json

# Which storage of readings keeps a year fast on PostgreSQL (see the README).
bench-layout: setup test-packages
	$(BIN)/python bench/readings_layout.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
