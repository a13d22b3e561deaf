# storefront: two commands do all set-up on a fresh machine with Python 3.11+.
#   make run   - create .venv, install, start the embedded DB (unless MONGODB_URI is set), serve on :8000
#   make test  - create .venv, install, run the whole test suite (it starts and stops its own DB);
#                installs redis-server and docker-compose (Debian) for the tests using them when missing

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install system-packages clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a requirements file changed.
$(STAMP): $(PY) requirements.txt requirements-dev.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
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

clean:
	rm -rf $(VENV) .pytest_cache
