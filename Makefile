# storefront: two commands do all set-up on a fresh machine with Python 3.11+.
#   make run   - create .venv, install, start the embedded DB (unless MONGODB_URI is set), serve on :8000
#   make test  - create .venv, install, run the whole test suite (it starts and stops its own DB);
#                installs redis-server and docker-compose (Debian) for the tests using them when missing
#   make lint  - ruff (rules and format check) and mypy, with the configuration in pyproject.toml
#   make lock  - pin every dependency, transitive ones included, with hashes, after editing requirements*.txt

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint lock install system-packages clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Install exactly the locked versions, each checked against its hash; reinstall only when a lock changed.
$(STAMP): $(PY) requirements.lock requirements-dev.lock
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m backend_app dev

# Debian packages some tests use: redis-server (shared rate-limit budget), the
# docker-compose client (validates docker-compose.yml; no Docker engine is needed) and
# chromium (the Swagger UI end-to-end test, driven by Playwright from requirements-dev.txt).
# Without them (no root, no apt-get, no network) those tests are skipped with the
# reason, never failed.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || missing="$$missing docker-compose"; \
	{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian packages for tests:$$missing ..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } \
	    >/dev/null 2>&1 || echo "warning: could not install$$missing; the tests needing them will be skipped."; \
	else \
	  echo "note:$$missing missing and not installable here (needs root and apt-get); the tests needing them will be skipped."; \
	fi

# The suite runs in TEST_WORKERS pytest-xdist processes; each starts its own SecantusDB
# (the session fixture in tests/conftest.py), so workers never share a server. Four
# workers on two cores keep both busy while tests wait on processes they start.
TEST_WORKERS ?= 4

test: install system-packages
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# requirements.txt / requirements-dev.txt name what we depend on; the locks pin everything it pulls in.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock: $(PY)
	$(PY) -m pip install --quiet pip-tools==7.6.2
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) -o requirements.lock requirements.txt
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) -o requirements-dev.lock requirements-dev.txt

clean:
	rm -rf $(VENV) .pytest_cache
