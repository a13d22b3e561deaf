"""The demo catalog of a first ``make run``: 194 DummyJSON products (MIT licence, ``LICENSE`` here).

``python -m backend_app dev`` calls :func:`load_demo_catalog_cli` only when it
started the embedded database itself (never with a configured ``MONGODB_URI``;
``serve`` never calls it). The catalog is loaded only into a database whose
``products`` collection holds no document at all (not even a soft-deleted one),
so it never mixes with real data and a restart loads nothing twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from backend_app.audit import repository as audit_repository
from backend_app.core.db import MongoDatabase, create_client
from backend_app.products import importer
from backend_app.products import indexes as products_indexes
from backend_app.products import repository as products_repository
from config import Settings

#: The demo products in the import format (JSON Lines; see ``README.md`` here).
DEMO_FILE = Path(__file__).with_name("products.jsonl")
#: The ``actor`` the audit trail records for the demo products.
DEMO_ACTOR = "system:demo-catalog"


async def load_demo_catalog(db: MongoDatabase) -> int | None:
    """Import :data:`DEMO_FILE` into ``db`` if its catalog is empty.

    Returns:
        The number of products loaded, or ``None`` when the catalog was not empty.
    """
    if await db[products_repository.COLLECTION].find_one({}, {"_id": 1}) is not None:
        return None
    await products_indexes.ensure_indexes(db)
    await audit_repository.ensure_indexes(db)
    report = await importer.import_rows(db, importer.read_rows(DEMO_FILE), actor=DEMO_ACTOR)
    return report.created


async def _load(settings: Settings) -> int | None:
    client = create_client(settings)
    try:
        return await load_demo_catalog(client[settings.mongodb_db])
    finally:
        await client.close()


def load_demo_catalog_cli(settings: Settings) -> int | None:
    """``dev``'s step: unless ``DEMO_DATA=false``, load the demo catalog into an empty database and say so in one line.

    Returns:
        The number of products loaded, or ``None`` (disabled, or the catalog was not empty).
    """
    if not settings.demo_data:
        return None
    loaded = asyncio.run(_load(settings))
    if loaded is not None:
        print(
            f"Loaded the demo catalog: {loaded} products (DummyJSON, MIT licence) into the empty database; "
            "start with DEMO_DATA=false to skip it.",
            flush=True,
        )
    return loaded
