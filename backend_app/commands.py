"""The catalog and account commands of ``python -m backend_app``: ``import-products`` and ``create-admin``.

``backend_app.__main__`` parses the command line and decides where the database
comes from (``MONGODB_URI``, or the embedded one it starts); these functions do
the work against it and return the command's exit status: 0 done, 1 refused
(rows or an existing account), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from pydantic import ValidationError

from config import Settings, get_settings

if TYPE_CHECKING:
    from backend_app.users.schemas import UserCreate

EXIT_CONFLICT = 1
EXIT_USAGE = 2
#: The ``actor`` the audit trail records for ``import-products`` (no token on the command line).
IMPORT_ACTOR = "cli:import-products"

#: Given the embedded database's folder, a context in which ``get_settings().mongodb_uri`` is the database to use.
DatabaseFor = Callable[[str], AbstractContextManager[bool]]


async def _import_products(settings: Settings | None, args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from backend_app.audit import repository as audit_repository
    from backend_app.core.db import create_client
    from backend_app.products import importer
    from backend_app.products import indexes as products_indexes
    from backend_app.products.stock import StockBasis

    path = Path(args.path)
    try:
        # A first pass in flat memory: a file broken half-way is refused before anything is written,
        # and the progress bars know their totals. The import itself streams the file again.
        total = importer.count_rows(path, args.format)
    except importer.CatalogFileError as exc:
        print(f"import-products: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = create_client(settings) if settings is not None else None
    try:
        db = client[settings.mongodb_db] if client is not None and settings is not None else None
        if db is not None:
            await products_indexes.ensure_indexes(db)
            await audit_repository.ensure_indexes(db)
        columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            checking = progress.add_task("validate", total=total)
            writing = progress.add_task("write", total=None if args.dry_run else total, visible=not args.dry_run)
            report = await importer.import_rows(
                db,
                importer.read_rows(path, args.format),
                actor=IMPORT_ACTOR,
                upsert=args.upsert,
                basis=StockBasis(args.stock_basis),
                dry_run=args.dry_run,
                on_validated=lambda n: progress.advance(checking, n),
                on_written=lambda n: progress.advance(writing, n),
            )
            progress.update(writing, total=report.valid, completed=report.valid)
    finally:
        if client is not None:
            await client.close()
    print(importer.format_report(report, source=str(path)))
    return 1 if report.refused else 0


def import_products(args: argparse.Namespace, *, database: DatabaseFor) -> int:
    """``import-products``: validate the file, write its valid rows (unless ``--dry-run``), print the report.

    Exit status 1 when any row was refused, 2 when the file cannot be read as its format. A dry run
    needs no database.
    """
    if args.dry_run:  # validation only: no database needed
        return asyncio.run(_import_products(None, args))
    with database(args.data_dir):
        return asyncio.run(_import_products(get_settings(), args))


def _read_admin_password() -> str:
    """``ADMIN_PASSWORD``, or typed twice at a prompt (not echoed)."""
    password = os.environ.get("ADMIN_PASSWORD")
    if password:
        return password
    password = getpass.getpass("Admin password (8..72 bytes): ")
    if getpass.getpass("Repeat the password: ") != password:
        raise SystemExit("create-admin: the two passwords differ; nothing was changed.")
    return password


async def _ensure_admin(settings: Settings, user: UserCreate, *, promote_existing: bool) -> int:
    from pymongo.errors import PyMongoError

    from backend_app.core.db import create_client
    from backend_app.users import repository as users_repository
    from backend_app.users import service as users_service
    from backend_app.users.exceptions import AccountExistsError, UserAlreadyExistsError

    client = create_client(settings)
    try:
        db = client[settings.mongodb_db]
        await users_repository.ensure_indexes(db)
        try:
            outcome = await users_service.ensure_admin(db, user=user, promote_existing=promote_existing)
        except AccountExistsError as exc:
            print(f"create-admin: {exc.detail}", file=sys.stderr)
            return EXIT_CONFLICT
        except UserAlreadyExistsError as exc:
            print(f"create-admin: {exc.detail} Nothing was changed.", file=sys.stderr)
            return EXIT_CONFLICT
        except PyMongoError as exc:  # e.g. the audit entry refused: the account change was rolled back with it
            print(f"create-admin: the database refused the change ({exc}). Nothing was changed.", file=sys.stderr)
            return EXIT_CONFLICT
    finally:
        await client.close()
    if outcome.created:
        print(f"Created admin {outcome.user.username!r} ({outcome.user.email}).")
    elif outcome.promoted:
        print(
            f"User {outcome.user.username!r} existed; it is now an active admin with the new password, "
            f"and every earlier session of it has ended (email kept: {outcome.user.email})."
        )
    else:
        print(f"Admin {outcome.user.username!r} already exists; nothing to do.")
    return 0


def create_admin(args: argparse.Namespace, *, database: DatabaseFor) -> int:
    """``create-admin``: make the account an active admin (idempotent); see ``users.service.ensure_admin``.

    Exit status 1 when the name is taken by another account and ``--promote-existing`` was not given,
    or the database refused the change; 2 when the fields are invalid.
    """
    from backend_app.users.schemas import UserCreate

    password = _read_admin_password()
    try:
        user = UserCreate(username=args.username, email=args.email, password=password, full_name=args.full_name)
    except ValidationError as exc:
        for err in exc.errors():
            print(f"create-admin: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return EXIT_USAGE
    with database(args.data_dir):
        return asyncio.run(_ensure_admin(get_settings(), user, promote_existing=args.promote_existing))
