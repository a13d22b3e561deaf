# storefront: two commands do all set-up on a fresh machine with Python 3.11+.
#   make run   - create .venv, install, start the embedded DB (unless MONGODB_URI is set), serve on :8000
#   make test  - create .venv, install, run the whole test suite (it starts and stops its own DB)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install browser bench clean

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

# The Swagger UI end-to-end test (tests/e2e) drives Debian's chromium through Playwright
# (requirements-dev.txt). Installed here when missing; where that is impossible (no root,
# no apt-get) the test is skipped and pytest prints why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the e2e test ..."; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	      || echo "warning: chromium could not be installed; the e2e test will be skipped"; \
	  else \
	    echo "note: chromium is missing and cannot be installed here (needs root and apt-get); the e2e test will be skipped"; \
	  fi; }

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
