# syntax=docker/dockerfile:1
# storefront API image: multi-stage, slim Python, non-root, no build tools or tests in the final stage.
#   docker build -t storefront .
#   docker run -p 8000:8000 -e MONGODB_URI=... -e JWT_SECRET=... storefront
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the runtime dependencies into a virtualenv ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# The locked runtime dependencies, each checked against its hash. Every one ships a binary
# wheel, so no compiler is needed even here.
RUN /opt/venv/bin/pip install --only-binary=:all: --require-hashes -r /tmp/requirements.lock

# --- runtime: the virtualenv and the application code only -------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    LOG_DIR=/app/logs \
    PROMETHEUS_MULTIPROC_DIR=/tmp/storefront-metrics
RUN groupadd --system --gid 10001 storefront \
    && useradd --system --uid 10001 --gid storefront --home-dir /app --shell /usr/sbin/nologin storefront
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY backend_app ./backend_app
# (backend_app/devtools, the development and test tooling, is left out by .dockerignore.)
COPY config ./config
RUN mkdir -p /app/logs && chown storefront:storefront /app/logs
USER storefront:storefront
EXPOSE 8000
# Healthy = ready for traffic: /health/ready answers 503 (which urlopen raises on) until MongoDB answers and
# the start-up indexes exist. Kubernetes ignores HEALTHCHECK: point its livenessProbe at /health/live and its
# readinessProbe at /health/ready (docs/operations.md (Observability)).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health/ready', timeout=4)"]
# uvicorn with WEB_CONCURRENCY worker processes on HOST:PORT (see backend_app/__main__.py).
CMD ["python", "-m", "backend_app", "serve"]
