"""Events: what changed in the store, recorded in the change's own transaction (the outbox and the feed)."""
