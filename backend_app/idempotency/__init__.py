"""Idempotent requests: the ``Idempotency-Key`` header's records, claims and replays (docs/contract.md §5)."""
