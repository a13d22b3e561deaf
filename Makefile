# storefront: two commands do all set-up on a fresh machine with Python 3.11+.
#   make run   - create .venv, install, start the embedded DB (unless MONGODB_URI is set), serve on :8000
#   make test  - create .venv, install, run the whole test suite (it starts and stops its own DB);
#                installs redis-server (Debian) for the shared rate-limit test when it is missing

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install redis-server bench clean

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

# The Redis rate-limit test needs a redis-server binary; without one (no root, no
# apt-get, no network) that test is skipped with the reason, never failed.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "Installing redis-server (Debian package) for the shared rate-limit test ..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; } \
	    >/dev/null 2>&1 || echo "Could not install redis-server; the Redis rate-limit test will be skipped."; }

test: install redis-server
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
