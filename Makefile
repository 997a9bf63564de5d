# faka: `make run` serves the demo shop, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_REDIS_URL_POSTGRESQL ?= redis://127.0.0.1:6379/14
PYTEST_ARGS ?=

.PHONY: run test lint lock test-sqlite test-postgresql test-sqlite-part test-browser-part test-postgresql-part test-servers bench bench-big attack fuzz translations extract-messages screenshots a11y vendor worker clean

# Installs read only the lock files: every package pinned, with its hashes (pyproject.toml
# names the direct dependencies; `make lock` resolves them again). faka itself is installed
# editable, for the `faka` command.
$(BIN)/activate: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(BIN)/activate

$(VENV)/.dev: $(BIN)/activate requirements-dev.lock
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	touch $(VENV)/.dev

lock: $(VENV)/.dev
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --upgrade --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --upgrade --no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

translations: $(BIN)/activate
	$(BIN)/pybabel compile -d faka/translations 2>/dev/null

extract-messages: $(BIN)/activate
	$(BIN)/pybabel extract -F babel.cfg -k _l -k _p:1c,2 -k lazy_pgettext:1c,2 -o faka/translations/messages.pot .
	$(BIN)/pybabel update --ignore-obsolete -i faka/translations/messages.pot -d faka/translations

run: $(BIN)/activate translations
	$(BIN)/flask --app faka init-db
	$(BIN)/flask --app faka seed-demo
	@echo "faka is serving on http://$(HOST):$(PORT)  (sandbox gateway, jobs in-process)"
	$(BIN)/flask --app faka run --host $(HOST) --port $(PORT)

worker: $(BIN)/activate translations
	$(BIN)/faka-worker

# `make test`: the suite on both databases, in three parts side by side (two cores; each
# part its own database and Redis database), each printing its output when it ends; any
# failing fails `make test`. The tests where the database does not matter (marked one_db,
# see pytest.ini) run only on SQLite, and of those the browser tests in a part of their own:
# they spend much of their time waiting for the page, while the other parts use the cores.
# The servers are checked first: one line says which is not running and how to start it.
test: TEST_SERVERS = $(TEST_DATABASE_URL) $(TEST_REDIS_URL) $(TEST_REDIS_URL_POSTGRESQL)
test: $(VENV)/.dev test-servers translations
	$(MAKE) --no-print-directory -j3 --output-sync=target test-postgresql-part test-sqlite-part test-browser-part

test-sqlite-part: $(VENV)/.dev translations
	FAKA_TEST_DATABASE=sqlite FAKA_TEST_REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest -q -m "not browser" $(PYTEST_ARGS)

test-browser-part: $(VENV)/.dev translations
	FAKA_TEST_DATABASE=sqlite FAKA_TEST_REDIS_URL= $(BIN)/pytest -q -m browser $(PYTEST_ARGS)

test-postgresql-part: $(VENV)/.dev translations
	FAKA_TEST_DATABASE=$(TEST_DATABASE_URL) FAKA_TEST_REDIS_URL=$(TEST_REDIS_URL_POSTGRESQL) $(BIN)/pytest -q -m "not one_db" $(PYTEST_ARGS)

# The servers a target needs (TEST_SERVERS, URLs): one line and a stop when one is not running.
test-servers: $(VENV)/.dev
	@$(BIN)/python tests/service_check.py $(TEST_SERVERS)

# Everything that needs no server: SQLite, no PostgreSQL, no Redis (the tests that need
# Redis are deselected, with a note).
test-sqlite: $(VENV)/.dev translations
	FAKA_TEST_DATABASE=sqlite FAKA_TEST_REDIS_URL= $(BIN)/pytest -q $(PYTEST_ARGS)

# The whole suite on PostgreSQL, one_db tests included.
test-postgresql: TEST_SERVERS = $(TEST_DATABASE_URL) $(TEST_REDIS_URL_POSTGRESQL)
test-postgresql: $(VENV)/.dev test-servers translations
	FAKA_TEST_DATABASE=$(TEST_DATABASE_URL) FAKA_TEST_REDIS_URL=$(TEST_REDIS_URL_POSTGRESQL) $(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.dev translations
	$(BIN)/python bench/run.py

# faka on a big shop's data next to a small shop's, on PostgreSQL and SQLite (bench/README.md): the
# first run fills the big shops with bench/bigshop.py (minutes) and keeps them for the next runs.
bench-big: $(VENV)/.dev translations
	$(BIN)/python bench/big_measure.py

attack: $(VENV)/.dev translations
	$(BIN)/python bench/attack.py

# tests/slow/test_fuzz_routes.py for longer: FAKA_FUZZ_ROUNDS rounds with a random seed (printed at the
# end; FAKA_FUZZ_SEED=<seed> repeats a run), on SQLite unless FAKA_TEST_DATABASE names a PostgreSQL.
FAKA_FUZZ_ROUNDS ?= 10
fuzz: $(VENV)/.dev translations
	FAKA_FUZZ_ROUNDS=$(FAKA_FUZZ_ROUNDS) FAKA_FUZZ_SEED=$${FAKA_FUZZ_SEED:-random} \
	FAKA_TEST_DATABASE=$${FAKA_TEST_DATABASE:-sqlite} FAKA_TEST_REDIS_URL=$(TEST_REDIS_URL) \
	$(BIN)/pytest -q -s tests/slow/test_fuzz_routes.py

# Phone-width screenshots of the main pages into docs/screenshots/ (Debian's chromium and fonts-noto-cjk).
screenshots: $(VENV)/.dev translations
	$(BIN)/python scripts/screenshots.py

# Lighthouse's mobile accessibility score of the buyer's pages, each at least 98 (Debian's chromium;
# Lighthouse pinned in scripts/lighthouse/, installed by npm ci into .tools/lighthouse/).
a11y: $(VENV)/.dev translations
	$(BIN)/python scripts/a11y.py

vendor:
	$(PYTHON) scripts/vendor.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
