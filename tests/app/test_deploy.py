"""Container files (docs/contract.md §8-9): the Dockerfile, .dockerignore and docker-compose.yml.

No Docker engine runs here, so the compose file is validated with the
client's ``docker compose config`` (or the standalone ``docker-compose``)
where one exists, and the promises each file makes are checked by reading it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_command() -> list[str] | None:
    """``docker compose`` when the plugin is installed, else ``docker-compose``, else ``None``."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here")
    return subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def test_the_compose_client_accepts_the_file() -> None:
    environment = {k: v for k, v in os.environ.items() if k not in {"JWT_SECRET", "MONGODB_URI"}}
    result = run_compose_config({**environment, "JWT_SECRET": "c" * 48})
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    api = rendered["services"]["api"]["environment"]
    assert api["MONGODB_URI"] == "mongodb://mongo:27017/?replicaSet=rs0"
    assert api["JWT_SECRET"] == "c" * 48
    # Without a JWT_SECRET the stack refuses to start, with a message saying what to set.
    refused = run_compose_config(environment)
    assert refused.returncode != 0
    assert "JWT_SECRET" in refused.stderr


def test_compose_runs_a_replica_set_redis_and_a_health_gated_api() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "mongo", "redis", "redis-cache"}
    mongo, redis_, api = services["mongo"], services["redis"], services["api"]
    assert mongo["image"] == "mongo:7"
    assert "--replSet" in mongo["command"]
    mongo_check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in mongo_check and "isWritablePrimary" in mongo_check
    assert redis_["image"].startswith("redis:7")
    assert "redis-cli" in redis_["healthcheck"]["test"]
    assert api["depends_on"] == {name: {"condition": "service_healthy"} for name in ("mongo", "redis", "redis-cache")}
    env = api["environment"]
    assert env["APP_ENV"] == "production"
    assert "replicaSet=rs0" in env["MONGODB_URI"]
    assert env["RATE_LIMIT_STORAGE_URI"].startswith("redis://redis:")
    assert "WEB_CONCURRENCY" in env


def test_security_counters_never_share_an_evicting_redis_with_the_page_cache() -> None:
    services = compose()["services"]
    env = services["api"]["environment"]
    assert env["RATE_LIMIT_STORAGE_URI"].startswith("redis://redis:")
    assert env["CACHE_URI"].startswith("redis://redis-cache:")

    def policy(service: str) -> str:
        command = services[service]["command"]
        return command[command.index("--maxmemory-policy") + 1]

    assert policy("redis") == "noeviction"
    assert policy("redis-cache") in {"allkeys-lru", "allkeys-lfu", "volatile-ttl", "volatile-lru"}


def test_probes_use_readiness_for_health_and_metrics_work_with_several_workers() -> None:
    """Compose and the image call the API healthy only when /health/ready says so; workers share metrics."""
    api = compose()["services"]["api"]
    check = api["healthcheck"]
    assert check["test"][0] == "CMD"
    assert "/health/ready" in " ".join(check["test"])
    assert {"interval", "timeout", "retries", "start_period"} <= check.keys()
    assert "METRICS_TOKEN" in api["environment"]
    final = dockerfile_stages()[-1]
    env = " ".join(i for i in final if i.upper().startswith("ENV "))
    # WEB_CONCURRENCY > 1 needs prometheus-client's multiprocess mode, or each scrape sees one worker.
    assert "PROMETHEUS_MULTIPROC_DIR=" in env
    health = next(i for i in final if i.upper().startswith("HEALTHCHECK "))
    assert "/health/live" not in health  # liveness is for restarts (Kubernetes), not for routing traffic


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into build stages."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = [
        line.strip()
        for line in re.sub(r"\\\n\s*", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_the_image_is_multi_stage_slim_non_root_and_health_checked() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.\d+-slim", text)
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    users = [i.split(None, 1)[1] for i in final if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    health = [i for i in final if i.upper().startswith("HEALTHCHECK ")]
    assert health and "/health/ready" in health[0]
    assert any(i.upper().startswith("CMD ") and "backend_app" in i and "serve" in i for i in final)
    assert any("WEB_CONCURRENCY" in i for i in final if i.upper().startswith("ENV "))
    copies = " ".join(i for i in final if i.upper().startswith(("COPY ", "ADD ")))
    for forbidden in ("tests", "requirements-dev", "benchmarks", ". .", "gcc", "build-essential"):
        assert forbidden not in copies, forbidden
    runs = " ".join(i for i in final if i.upper().startswith("RUN "))
    assert "apt-get install" not in runs and "pip install" not in runs


def test_dockerignore_keeps_tests_secrets_and_local_state_out_of_the_build_context() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Everything is excluded, then only what the image needs is let back in.
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"requirements.lock", "backend_app", "config"}


def test_development_and_test_tooling_is_not_shipped_in_the_image() -> None:
    """backend_app/devtools (embedded DB, server launchers, seeding) is excluded after backend_app/ is let in.

    A later ``.dockerignore`` line wins, so the exclusion must come after ``!backend_app/``; the
    application must not need devtools to serve (only ``python -m backend_app dev`` uses it).
    """
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "backend_app/devtools/" in lines
    assert lines.index("backend_app/devtools/") > lines.index("!backend_app/")
    assert not any(line.startswith("!") and "devtools" in line for line in lines)
    shipped = [
        path
        for path in (ROOT / "backend_app").rglob("*.py")
        if "devtools" not in path.relative_to(ROOT / "backend_app").parts
    ]
    for path in shipped:
        source = path.read_text(encoding="utf-8")
        for line in source.splitlines():
            if re.match(r"\s*(from|import)\s+backend_app\.devtools", line):
                # Only the `dev` command of backend_app/__main__.py may import devtools, lazily (indented).
                assert path.name == "__main__.py" and line.startswith((" ", "\t")), (path, line)
