"""``core.db.after_commit``: a callback runs once its transaction committed, never for an attempt that did not."""

from __future__ import annotations

import pytest
from pymongo.errors import PyMongoError

from backend_app.core.db import after_commit, run_in_transaction

pytestmark = pytest.mark.asyncio


async def test_a_callback_runs_after_the_commit_with_the_change_visible(app):
    db = app.state.db
    seen: list[int] = []

    async def work(session):
        await db["things"].insert_one({"_id": 1}, session=session)
        assert after_commit(session, lambda: seen.append(1))
        assert seen == []  # not before the commit

    await run_in_transaction(db.client, work)
    assert seen == [1]
    assert await db["things"].find_one({"_id": 1}) == {"_id": 1}


async def test_an_aborted_transaction_runs_no_callback(app):
    db = app.state.db
    seen: list[str] = []

    async def work(session):
        await db["things"].insert_one({"_id": 2}, session=session)
        after_commit(session, lambda: seen.append("aborted"))
        raise ValueError("the change is refused")

    with pytest.raises(ValueError, match="refused"):
        await run_in_transaction(db.client, work)
    assert seen == []
    assert await db["things"].find_one({"_id": 2}) is None


async def test_only_the_attempt_that_committed_runs_its_callbacks(app):
    db = app.state.db
    seen: list[int] = []
    attempts = 0

    async def work(session):
        nonlocal attempts
        attempts += 1
        after_commit(session, lambda n=attempts: seen.append(n))
        if attempts == 1:  # what a write conflict with another transaction raises: the driver re-runs it
            raise PyMongoError("simulated write conflict", error_labels=["TransientTransactionError"])

    await run_in_transaction(db.client, work)
    assert attempts == 2 and seen == [2]


async def test_outside_a_transaction_nothing_is_registered(app):
    async with app.state.db.client.start_session() as session:
        assert after_commit(session, lambda: None) is False
