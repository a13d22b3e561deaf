"""``import-products`` killed mid-import: each 1,000-product chunk lands whole with its audit entries, or not at all.

The bulk write path (``products.bulk.write_products``) commits a chunk's
products and one audit entry per product in one transaction (the
record and the change cannot disagree). This kills the real CLI process with
SIGKILL after its first chunk committed, then checks that no product lacks its
entry, no entry names a missing product, and that re-running the same file
with ``--upsert`` converges on exactly one product per SKU (docs/architecture.md (Catalog at scale)).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from backend_app.audit.repository import COLLECTION as AUDIT
from backend_app.devtools.api_server import _SETTINGS_PREFIXES, REPO
from backend_app.devtools.embedded_db import EmbeddedMongo

ROWS = 3_000
CHUNK = 1_000  # products.bulk.WRITE_BATCH


@pytest.fixture
def mongo(mongo_server: EmbeddedMongo, db_name: str) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(mongo_server.uri)
    yield client
    client.drop_database(db_name)
    client.close()


def _cli(path: Path, uri: str, db_name: str, *flags: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    env.update(MONGODB_URI=uri, MONGODB_DB=db_name, APP_ENV="test")
    return subprocess.Popen(
        [sys.executable, "-m", "backend_app", "import-products", str(path), *flags],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _created_entries(mongo: MongoClient, db_name: str) -> list[str]:
    return [e["entity_id"] for e in mongo[db_name][AUDIT].find({"action": "product.create"}, {"entity_id": 1})]


def test_an_import_killed_mid_way_leaves_whole_audited_chunks_and_a_rerun_converges(
    mongo_server: EmbeddedMongo, db_name: str, mongo: MongoClient, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.jsonl"
    path.write_text(
        "\n".join(json.dumps({"name": f"Item {i}", "price": 1 + i % 50, "sku": f"SKU-{i:05d}"}) for i in range(ROWS))
    )
    products = mongo[db_name]["products"]
    importer = _cli(path, mongo_server.uri, db_name)
    deadline = time.monotonic() + 120
    while products.count_documents({}) < CHUNK and time.monotonic() < deadline and importer.poll() is None:
        time.sleep(0.02)
    importer.send_signal(signal.SIGKILL)
    importer.wait()

    stored = {str(d["_id"]) for d in products.find({}, {"_id": 1})}
    assert 0 < len(stored) < ROWS, "the kill should land between the first chunk and the end"
    assert len(stored) % CHUNK == 0, "a chunk is committed whole or not at all"
    created = _created_entries(mongo, db_name)
    assert sorted(created) == sorted(stored), "every product has exactly one entry, every entry its product"

    rerun = _cli(path, mongo_server.uri, db_name, "--upsert")
    assert rerun.wait(timeout=180) == 0
    skus = [d["sku"] for d in products.find({}, {"sku": 1})]
    assert len(skus) == ROWS and len(set(skus)) == ROWS
    assert sorted(_created_entries(mongo, db_name)) == sorted(str(d["_id"]) for d in products.find({}, {"_id": 1}))
