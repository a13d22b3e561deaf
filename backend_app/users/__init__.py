"""User accounts: storage, admin management (spec §3)."""
