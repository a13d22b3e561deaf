"""``python -m backend_app``: ``create-admin`` (idempotent) and the production guard stopping ``serve`` (docs/contract.md §3, §8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend_app.audit import repository as audit_repository
from backend_app.devtools.embedded_db import EmbeddedMongo
from tests.support.auth_helpers import bearer, login, register
from tests.support.helpers import TEST_PASSWORD, assert_problem

REPO = Path(__file__).resolve().parents[2]
#: The password ``create-admin`` gives the admin: unlike ``TEST_PASSWORD``, so a test can tell them apart.
CREATE_ADMIN_PASSWORD = "admin-passw0rd-long"


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m backend_app ARGS`` in the repository, detached from any terminal."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "DATABASE_URL", "JWT_", "ADMIN_"))}
    return subprocess.run(
        [sys.executable, "-m", "backend_app", *args],
        cwd=REPO,
        env={**base, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # no controlling terminal: getpass reads stdin
        check=False,
    )


def create_admin(
    username: str, *flags: str, db_env: dict[str, str], email: str = "new-admin@example.com"
) -> subprocess.CompletedProcess[str]:
    """``create-admin --username USERNAME --email EMAIL FLAGS`` with ``ADMIN_PASSWORD`` set."""
    return run_cli(
        "create-admin",
        "--username",
        username,
        "--email",
        email,
        *flags,
        env={**db_env, "ADMIN_PASSWORD": CREATE_ADMIN_PASSWORD},
    )


@pytest.fixture
def db_env(mongo_server: EmbeddedMongo, db_name: str) -> dict[str, str]:
    """Environment pointing the CLI at this test's database."""
    return {"APP_ENV": "test", "MONGODB_URI": mongo_server.uri, "MONGODB_DB": db_name}


async def test_create_admin_is_idempotent_and_the_admin_can_log_in(
    client: httpx.AsyncClient, db_env: dict[str, str]
) -> None:
    args = ("create-admin", "--username", "boss", "--email", "Boss@Example.com", "--full-name", "The Boss")
    first = run_cli(*args, env={**db_env, "ADMIN_PASSWORD": CREATE_ADMIN_PASSWORD})
    assert first.returncode == 0, first.stderr
    assert "Created admin 'boss'" in first.stdout
    assert CREATE_ADMIN_PASSWORD not in first.stdout + first.stderr

    again = run_cli(*args, env={**db_env, "ADMIN_PASSWORD": "a-different-password"})
    assert again.returncode == 0, again.stderr
    assert "already exists; nothing to do" in again.stdout

    pair = await login(client, "boss", CREATE_ADMIN_PASSWORD)  # the first password still holds
    users = await client.get("/users", headers=bearer(pair["access_token"]))
    assert users.status_code == 200, users.text
    assert [(u["username"], u["role"], u["email"]) for u in users.json()["data"]] == [
        ("boss", "admin", "boss@example.com")
    ]


async def test_create_admin_refuses_an_existing_username(client: httpx.AsyncClient, db_env: dict[str, str]) -> None:
    # Anyone can register the name first: the command must not hand it admin rights.
    assert (await register(client, "squatter")).status_code == 201
    result = create_admin("squatter", db_env=db_env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "already exists and is not an active admin" in result.stderr
    assert "--promote-existing" in result.stderr
    assert "Traceback" not in result.stderr
    pair = await login(client, "squatter", TEST_PASSWORD)  # unchanged: still a shopper with its own password
    assert_problem(await client.get("/users", headers=bearer(pair["access_token"])), 403)
    assert_problem(
        await client.post("/auth/login", json={"username": "squatter", "password": CREATE_ADMIN_PASSWORD}), 401
    )


async def test_create_admin_promote_existing_sets_the_password_and_ends_every_session(
    client: httpx.AsyncClient, db_env: dict[str, str]
) -> None:
    assert (await register(client, "squatter")).status_code == 201
    before = await login(client, "squatter")
    result = create_admin("squatter", "--promote-existing", db_env=db_env)
    assert result.returncode == 0, result.stderr
    assert "now an active admin with the new password" in result.stdout
    assert CREATE_ADMIN_PASSWORD not in result.stdout + result.stderr
    # The squatter's tokens and password are dead; CREATE_ADMIN_PASSWORD signs in as admin.
    assert_problem(await client.get("/auth/me", headers=bearer(before["access_token"])), 401, "invalid_token")
    assert_problem(await client.post("/auth/refresh", json={"refresh_token": before["refresh_token"]}), 401)
    assert_problem(await client.post("/auth/login", json={"username": "squatter", "password": TEST_PASSWORD}), 401)
    after = await login(client, "squatter", CREATE_ADMIN_PASSWORD)
    users = await client.get("/users", headers=bearer(after["access_token"]))
    assert users.status_code == 200
    assert users.json()["data"][0]["email"] == "squatter@example.com"  # the account's email is kept


async def test_create_admin_records_the_creation_and_the_promotion_in_the_audit_trail(
    client: httpx.AsyncClient, db_env: dict[str, str]
) -> None:
    """An account made admin by the CLI is an admin change; both ways are audited as ``cli:create-admin``."""
    assert create_admin("root", db_env=db_env).returncode == 0
    assert (await register(client, "squatter")).status_code == 201
    assert create_admin("squatter", "--promote-existing", db_env=db_env).returncode == 0
    admin = bearer((await login(client, "root", CREATE_ADMIN_PASSWORD))["access_token"])
    entries = (await client.get("/audit", params={"actor": "cli:create-admin"}, headers=admin)).json()["data"]
    seen = {(e["action"], e["entity_type"], e["entity_id"]): (e["before"], e["after"]) for e in entries}
    assert seen == {
        ("user.create", "user", "root"): (None, {"role": "admin", "is_active": True}),
        ("user.promote", "user", "squatter"): ({"role": "user"}, {"role": "admin"}),
    }
    assert (
        CREATE_ADMIN_PASSWORD not in str(entries) and TEST_PASSWORD not in str(entries) and "hash" not in str(entries)
    )
    # Running create-admin again for an existing admin changes nothing and records nothing.
    assert create_admin("root", db_env=db_env).returncode == 0
    again = (await client.get("/audit", params={"actor": "cli:create-admin"}, headers=admin)).json()["data"]
    assert len(again) == 2


async def test_create_admin_whose_audit_entry_cannot_be_written_changes_no_account(
    client: httpx.AsyncClient, db_env: dict[str, str], mongo: Any
) -> None:
    """The account change and its audit entry are one transaction: when the entry's insert fails, nothing changes."""
    assert create_admin("root", db_env=db_env).returncode == 0
    assert (await register(client, "squatter")).status_code == 201
    squatter = await login(client, "squatter")
    # From now on a second entry by the same actor violates a unique index, so its insert fails.
    await mongo[audit_repository.COLLECTION].create_index("actor", unique=True, name="one_per_actor")
    promoted = create_admin("squatter", "--promote-existing", db_env=db_env)
    created = create_admin("second", db_env=db_env, email="second@example.com")
    assert promoted.returncode != 0 and created.returncode != 0
    for result in (promoted, created):  # an audit failure is not a taken username, nor a traceback
        assert "taken" not in result.stderr and "Traceback" not in result.stderr
        assert "the database refused the change" in result.stderr and "Nothing was changed" in result.stderr
    # The squatter is still a shopper with its own password and its session; no "second" account exists.
    assert (await client.get("/auth/me", headers=bearer(squatter["access_token"]))).json()["role"] == "user"
    await login(client, "squatter")
    assert await mongo["users"].count_documents({"username": "second"}) == 0
    assert await mongo[audit_repository.COLLECTION].count_documents({"actor": "cli:create-admin"}) == 1


async def test_create_admin_refuses_a_case_variant_of_an_existing_username(
    client: httpx.AsyncClient, db_env: dict[str, str]
) -> None:
    assert (await register(client, "boss")).status_code == 201
    result = create_admin("Boss", db_env=db_env)
    assert result.returncode == 1
    assert "username is taken" in result.stderr


async def test_create_admin_reads_the_password_from_a_prompt(client: httpx.AsyncClient, db_env: dict[str, str]) -> None:
    result = run_cli(
        "create-admin",
        "--username",
        "prompted",
        "--email",
        "p@example.com",
        env=db_env,
        stdin=f"{CREATE_ADMIN_PASSWORD}\n{CREATE_ADMIN_PASSWORD}\n",
    )
    assert result.returncode == 0, result.stderr
    await login(client, "prompted", CREATE_ADMIN_PASSWORD)
    mismatch = run_cli(
        "create-admin",
        "--username",
        "prompted2",
        "--email",
        "p2@example.com",
        env=db_env,
        stdin=f"{CREATE_ADMIN_PASSWORD}\nsomething-else\n",
    )
    assert mismatch.returncode != 0
    assert "differ" in mismatch.stderr


async def test_create_admin_refuses_bad_input(client: httpx.AsyncClient, db_env: dict[str, str]) -> None:
    assert (await register(client, "taken", email="taken@example.com")).status_code == 201
    env = {**db_env, "ADMIN_PASSWORD": CREATE_ADMIN_PASSWORD}
    conflict = run_cli("create-admin", "--username", "newboss", "--email", "taken@example.com", env=env)
    assert conflict.returncode == 1
    assert "email is already registered" in conflict.stderr
    short = run_cli(
        "create-admin", "--username", "newboss", "--email", "n@example.com", env={**db_env, "ADMIN_PASSWORD": "short"}
    )
    assert short.returncode == 2
    assert "password" in short.stderr and "Traceback" not in short.stderr
    bad_name = run_cli("create-admin", "--username", "a b", "--email", "n@example.com", env=env)
    assert bad_name.returncode == 2
    assert_problem(
        await client.post("/auth/login", json={"username": "newboss", "password": CREATE_ADMIN_PASSWORD}), 401
    )


def test_production_start_up_stops_with_a_clear_message() -> None:
    result = run_cli(
        "serve", env={"APP_ENV": "production", "MONGODB_URI": "mongodb://127.0.0.1:1", "JWT_SECRET": "too-short"}
    )
    assert result.returncode == 2
    assert "configuration error: JWT_SECRET must be set to at least 32 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("serve", env={"APP_ENV": "production", "MONGODB_URI": "mongodb://127.0.0.1:1"})
    assert missing.returncode == 2
    assert "JWT_SECRET" in missing.stderr


def test_without_mongodb_uri_an_install_without_the_embedded_database_says_what_to_set(tmp_path: Path) -> None:
    """The Docker image has no ``backend_app/devtools``: a command needing a database names MONGODB_URI, no traceback."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "DATABASE_URL"))}
    catalog = tmp_path / "one.jsonl"
    catalog.write_text('{"name": "Tee", "price": 5, "sizes": [{"size": "M", "quantity": 1}]}\n', encoding="utf-8")
    script = (
        "import sys; sys.modules['backend_app.devtools.embedded_db'] = None; "  # as if the module were not installed
        "from backend_app.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "import-products", str(catalog), "--data-dir", str(tmp_path / "db")],
        cwd=REPO, env=base, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "MONGODB_URI" in result.stderr and "no embedded database" in result.stderr


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"APP_ENV": "development", "HOST": "0.0.0.0"}, True),
        ({"APP_ENV": "test", "HOST": "::"}, True),
        ({"APP_ENV": "development", "HOST": "203.0.113.9"}, True),
        ({"APP_ENV": "development", "HOST": "shop.example"}, True),
        (
            {
                "APP_ENV": "development",
                "HOST": "0.0.0.0",
                "JWT_SECRET": "dev-only-insecure-secret-change-me-0123456789",
            },
            True,
        ),
        ({"APP_ENV": "development", "HOST": "0.0.0.0", "JWT_SECRET": "short"}, True),
        ({"APP_ENV": "development", "HOST": "0.0.0.0", "JWT_SECRET": "k" * 32}, False),
        ({"APP_ENV": "development", "HOST": "127.0.0.1"}, False),
        ({"APP_ENV": "development", "HOST": "localhost"}, False),
        ({"APP_ENV": "development", "HOST": "::1"}, False),
    ],
)
def test_serve_refuses_a_non_loopback_host_without_a_jwt_secret_of_its_own(
    env: dict[str, str], refused: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    from backend_app.__main__ import main
    from config.settings import get_settings

    for name in ("APP_ENV", "HOST", "JWT_SECRET", "MONGODB_URI", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    listened: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: listened.append(kwargs["host"]))
    get_settings.cache_clear()
    try:
        status = main(["serve"])
    finally:
        get_settings.cache_clear()
    if refused:
        assert status == 2
        assert listened == []
        assert "JWT_SECRET" in capsys.readouterr().err
    else:
        assert status == 0
        assert listened == [env["HOST"]]
