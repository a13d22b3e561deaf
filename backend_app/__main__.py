"""Command line: ``python -m backend_app {serve,dev}``.

- ``serve``: run the API with uvicorn on ``HOST``:``PORT`` with
  ``WEB_CONCURRENCY`` worker processes (settings). uvicorn's own access log
  and proxy-header handling are off: the app logs one JSON line per request
  and trusts ``X-Forwarded-For`` only from ``TRUSTED_PROXIES``.
- ``dev``: what ``make run`` does: start the embedded SecantusDB (data in
  ``./data/db``) unless ``MONGODB_URI`` is configured, then serve; Ctrl-C
  stops both, the database cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys

from config import get_settings


def _serve(*, reload: bool = False) -> None:
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "backend_app.main:app",
        host=settings.host,
        port=settings.port,
        reload=reload,
        workers=settings.web_concurrency,
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_config=None,
    )


def _dev(data_dir: str) -> None:
    settings = get_settings()
    if settings.mongodb_uri:
        print(f"MONGODB_URI is set; using it (database {settings.mongodb_db!r}).", flush=True)
        _serve()
        return
    from backend_app.devtools.embedded_db import EmbeddedMongo

    os.makedirs("logs", exist_ok=True)
    db = EmbeddedMongo(storage_path=data_dir, log_path=os.path.join("logs", "secantus.log"))
    print(f"Starting embedded SecantusDB (data in {data_dir}) ...", flush=True)
    db.start()
    print(f"SecantusDB ready at {db.uri}", flush=True)
    os.environ["MONGODB_URI"] = db.uri
    get_settings.cache_clear()
    try:
        _serve()
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping SecantusDB ...", flush=True)
        db.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m backend_app", description="storefront commands")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the API with uvicorn on HOST:PORT")
    dev = sub.add_parser("dev", help="start the embedded database unless MONGODB_URI is set, then serve")
    dev.add_argument("--data-dir", default=os.path.join("data", "db"), help="embedded database files")
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve()
    elif args.command == "dev":
        _dev(args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
