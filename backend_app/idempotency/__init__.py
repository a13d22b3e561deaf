"""Idempotent requests: the ``Idempotency-Key`` header's records, claims and replays."""
