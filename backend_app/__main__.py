"""Command line: ``python -m backend_app {serve,dev,create-admin,import-products,webhook-listen}``.

- ``serve``: run the API with uvicorn on ``HOST``:``PORT`` with
  ``WEB_CONCURRENCY`` worker processes (settings). uvicorn's own access log
  and proxy-header handling are off: the app logs one JSON line per request
  and trusts ``X-Forwarded-For`` only from ``TRUSTED_PROXIES``. With
  ``PROMETHEUS_MULTIPROC_DIR`` set, that directory is emptied first
  (docs/operations.md (Observability)). On a ``HOST`` other than loopback it refuses to
  listen (exit status 2) without a ``JWT_SECRET`` of its own, whatever
  ``APP_ENV`` says: the development fallback key is public.
- ``dev``: what ``make run`` does: start the embedded SecantusDB (data in
  ``./data/db``, ``--sync-on-commit``) unless ``MONGODB_URI`` is configured, load the demo catalog
  into it when it has no products (``backend_app.demo``; ``DEMO_DATA=false``
  skips it; never with a configured ``MONGODB_URI``), then serve; Ctrl-C
  or SIGTERM stops uvicorn, then the database, cleanly.
- ``create-admin --username NAME --email EMAIL [--full-name TEXT] [--promote-existing]``:
  create that account as an active admin (registration only ever makes a ``user``, so the
  first admin comes from the command line). The password comes from
  ``ADMIN_PASSWORD`` or a prompt; running it again for an existing active
  admin changes nothing. Any other existing account with that name is
  refused (exit status 1: anyone could have registered it) unless
  ``--promote-existing``, which makes it an active admin, sets its password
  and ends every session of it.
  Uses ``MONGODB_URI``, or the embedded database's files in ``./data/db``.

- ``import-products PATH [--format json|jsonl|csv] [--dry-run] [--upsert]``:
  bulk import of a catalog file (``products.importer``), with a progress bar
  on stderr and a report on stdout; exit status 1 when any row was refused.
  Uses ``MONGODB_URI``, or the embedded database's files in ``./data/db``.

- ``webhook-listen --secret whsec_... [--port 9000]``: a development receiver on
  ``http://127.0.0.1:PORT/hook`` printing each delivery verified with
  ``standardwebhooks`` (``backend_app.devtools.webhook_listen``).

A configuration error (e.g. ``APP_ENV=production`` without a 32-byte
``JWT_SECRET``) stops every command with a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import sys
from collections.abc import Iterator

from pydantic import ValidationError

from backend_app import commands
from config import Settings, get_settings
from config.settings import DEV_JWT_SECRET, MIN_JWT_SECRET_BYTES_BY_ALGORITHM

EXIT_USAGE = commands.EXIT_USAGE


def _reset_metrics_dir() -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` (if set) before the workers start: old workers' values must not count."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def _is_loopback(host: str) -> bool:
    """Whether ``HOST`` accepts connections from this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _own_signing_key_problem(settings: Settings) -> str | None:
    """Why ``serve`` must not listen on ``HOST``, or ``None``.

    Outside loopback, every token must be signed with a key of this
    deployment: the development fallback is public (it is in the source), so
    anyone could forge a token with it, whatever ``APP_ENV`` says.
    """
    if _is_loopback(settings.host):
        return None
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    min_bytes = MIN_JWT_SECRET_BYTES_BY_ALGORITHM[settings.jwt_algorithm]
    if secret and secret != DEV_JWT_SECRET and len(secret.encode()) >= min_bytes:
        return None
    return (
        f"HOST={settings.host} is reachable from other machines, so JWT_SECRET must be set to a key of this "
        f"deployment (at least {min_bytes} bytes for JWT_ALGORITHM={settings.jwt_algorithm}, not the development "
        "default), whatever APP_ENV says; or serve on HOST=127.0.0.1. Generate one with: "
        f"python -c 'import secrets; print(secrets.token_urlsafe({min_bytes * 3 // 2}))'"
    )


def _serve(*, reload: bool = False) -> int:
    """Run uvicorn on ``HOST``:``PORT``; exit status 2 (nothing listens) when :func:`_own_signing_key_problem`."""
    import uvicorn

    settings = get_settings()
    problem = _own_signing_key_problem(settings)
    if problem is not None:
        print(f"storefront: configuration error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    _reset_metrics_dir()
    uvicorn.run(
        "backend_app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        workers=settings.web_concurrency,
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_config=None,
    )
    return 0


@contextlib.contextmanager
def _embedded_db_unless_configured(data_dir: str) -> Iterator[bool]:
    """Run the body with ``MONGODB_URI`` set: the configured one, or an embedded SecantusDB on ``data_dir``.

    Yields whether the database is the embedded one started here.
    """
    settings = get_settings()
    if settings.mongodb_uri:
        print(f"MONGODB_URI is set; using it (database {settings.mongodb_db!r}).", flush=True)
        yield False
        return
    try:
        from backend_app.devtools.embedded_db import EmbeddedMongo
    except ImportError:  # the Docker image ships without backend_app/devtools (and without SecantusDB)
        raise SystemExit(
            "MONGODB_URI is not set, and this installation has no embedded database (the Docker image leaves "
            "out the development tooling). Set MONGODB_URI to your MongoDB deployment."
        ) from None

    os.makedirs("logs", exist_ok=True)
    db = EmbeddedMongo(storage_path=data_dir, log_path=os.path.join("logs", "secantus.log"))
    print(f"Starting embedded SecantusDB (data in {data_dir}) ...", flush=True)
    try:
        try:
            db.start()
        except RuntimeError as exc:
            raise SystemExit(
                f"The embedded database in {data_dir} could not start ({exc}). If `make run` is using it, "
                "run this command with MONGODB_URI set to the URI `make run` printed."
            ) from None
        print(f"SecantusDB ready at {db.uri}", flush=True)
        os.environ["MONGODB_URI"] = db.uri
        get_settings.cache_clear()
        yield True
    finally:
        # A second Ctrl-C or SIGTERM must not interrupt the database's clean shutdown.
        with _signals_ignored():
            print("Stopping SecantusDB ...", flush=True)
            db.stop()


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for the body, then restore their handlers."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler of ``dev``: unwind like Ctrl-C, so the embedded database is stopped."""
    raise KeyboardInterrupt


def _dev(data_dir: str) -> int:
    """Serve with the embedded database; SIGINT or SIGTERM stops uvicorn, then the database.

    uvicorn handles both signals while it runs (graceful shutdown) and then
    re-raises the one it caught; SIGTERM's default action would kill this
    process before the database is stopped, leaving it holding the data
    folder. So SIGTERM is turned into ``KeyboardInterrupt``, like SIGINT.
    A new embedded database first gets the demo catalog.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt), _embedded_db_unless_configured(data_dir) as embedded:
            if embedded:
                from backend_app.demo import load_demo_catalog_cli

                load_demo_catalog_cli(get_settings())
            return _serve()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m backend_app", description="storefront commands")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the API with uvicorn on HOST:PORT")
    dev = sub.add_parser("dev", help="start the embedded database unless MONGODB_URI is set, then serve")
    dev.add_argument("--data-dir", default=os.path.join("data", "db"), help="embedded database files")
    admin = sub.add_parser(
        "create-admin",
        help="create an active admin (idempotent); --promote-existing to take over an existing account",
        description="Password: ADMIN_PASSWORD, else a prompt. Database: MONGODB_URI, else the embedded one.",
    )
    admin.add_argument("--username", required=True, help="the admin's username (also the login)")
    admin.add_argument("--email", required=True, help="the admin's email")
    admin.add_argument("--full-name", default=None, help="optional display name")
    admin.add_argument(
        "--promote-existing",
        action="store_true",
        help="if the username exists, make it an active admin, set its password and end all its sessions",
    )
    admin.add_argument(
        "--data-dir", default=os.path.join("data", "db"), help="embedded database files, when MONGODB_URI is unset"
    )
    hook = sub.add_parser("webhook-listen", help="development receiver: print each verified webhook delivery")
    hook.add_argument("--secret", required=True, help="the endpoint's signing secret (whsec_...)")
    hook.add_argument("--port", type=int, default=9000, help="port of http://127.0.0.1:PORT/hook (default 9000)")
    imp = sub.add_parser(
        "import-products",
        help="bulk import products from a JSON array, JSON Lines or CSV file",
        description="Validates every row as POST /products does, writes valid rows in batches, "
        "prints a report; exit status 1 when any row was refused. Formats: docs/architecture.md (Catalog at scale).",
    )
    imp.add_argument("path", help="the catalog file (.json, .jsonl/.ndjson or .csv)")
    imp.add_argument("--format", choices=["json", "jsonl", "csv"], default=None, help="override the extension")
    imp.add_argument("--dry-run", action="store_true", help="validate only; write nothing (no database needed)")
    imp.add_argument(
        "--upsert", action="store_true", help="update the live product with the row's sku instead of refusing"
    )
    imp.add_argument(
        "--stock-basis",
        choices=["on_hand", "available"],
        default="on_hand",
        help="how --upsert reads a row's quantities: on_hand (default; refused below what pending orders hold) "
        "or available (on hand = the row's number + what pending orders hold)",
    )
    imp.add_argument(
        "--data-dir", default=os.path.join("data", "db"), help="embedded database files, when MONGODB_URI is unset"
    )
    args = parser.parse_args(argv)
    try:
        get_settings()
    except ValidationError as exc:
        for err in exc.errors():
            print(f"storefront: configuration error: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "webhook-listen":
        from backend_app.devtools.webhook_listen import listen

        listen(secret=args.secret, port=args.port)
        return 0
    if args.command == "serve":
        return _serve()
    elif args.command == "dev":
        return _dev(args.data_dir)
    elif args.command == "create-admin":
        return commands.create_admin(args, database=_embedded_db_unless_configured)
    elif args.command == "import-products":
        return commands.import_products(args, database=_embedded_db_unless_configured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
