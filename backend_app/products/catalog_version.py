"""The catalog version: bumped after every catalog write, so every cached list page goes out of date.

Kept in MongoDB (``products.catalog_meta.get_catalog_version`` / ``bump_catalog_version``),
so a write made through any process invalidates every process's pages. No HTTP
and no cache client here: ``products.service`` calls :func:`catalog_changed`.
"""

from __future__ import annotations

from backend_app.core.db import MongoDatabase
from backend_app.products import catalog_meta


async def catalog_changed(db: MongoDatabase) -> None:
    """Record that the catalog changed: bump the catalog version, so every cached list page is out of date.

    Call it from each catalog write of ``products.service`` (create, replace,
    update, delete, set quantity) **after** the write has completed, never
    before: a list request that reads the new version and then queries must
    see the write. Bumped before the write, a request could read the new
    version, query the old data before the write lands, and store that page
    under the new version, where it would be served as current until the next
    write. Orders need not call it: they change only stock, which list pages
    do not show.

    If the bump itself fails (database gone between the write and the bump),
    the error propagates; pages can then be out of date for at most
    ``CACHE_TTL_SECONDS``.
    """
    await catalog_meta.bump_catalog_version(db)
