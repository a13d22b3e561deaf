"""``python -m backend_app dev`` (what ``make run`` runs) shuts down cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backend_app.devtools.api_server import _SETTINGS_PREFIXES, REPO
from backend_app.devtools.embedded_db import free_port


def _descendants(pid: int) -> set[int]:
    """Every live process descending from ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _holders(folder: Path) -> set[int]:
    """Processes with a file under ``folder`` open."""
    holders = set()
    prefix = str(folder.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd).startswith(prefix):
                    holders.add(int(entry.name))
                    break
        except OSError:
            continue
    return holders


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_dev(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    env.update(
        PYTHONPATH=str(REPO), PORT=str(port), APP_ENV="development", LOG_DIR=str(tmp_path / "logs"), LOG_LEVEL="WARNING"
    )
    with open(tmp_path / "dev.log", "ab") as log:  # the child writes to its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "backend_app", "dev", "--data-dir", str(tmp_path / "db")],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "dev.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("dev did not become healthy: " + (tmp_path / "dev.log").read_text())


def _stop_and_check(process: subprocess.Popen[bytes], sig: signal.Signals, tmp_path: Path, port: int) -> None:
    children = _descendants(process.pid)
    assert children, "the embedded database should be a child process"
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    leftovers = {pid for pid in children if _alive(pid)}
    for pid in leftovers:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"{sig.name} left {leftovers} running"
    assert _port_free(port)
    assert not _holders(tmp_path / "db")
    assert "Stopping SecantusDB" in (tmp_path / "dev.log").read_text()


def test_sigterm_then_sigint_stop_uvicorn_and_the_database(tmp_path: Path) -> None:
    port = free_port()
    first = _start_dev(tmp_path, port)
    _stop_and_check(first, signal.SIGTERM, tmp_path, port)
    # a second start on the same data folder works at once
    started = time.monotonic()
    second = _start_dev(tmp_path, port)
    assert time.monotonic() - started < 30
    _stop_and_check(second, signal.SIGINT, tmp_path, port)
