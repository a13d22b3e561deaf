"""User accounts: storage, admin management (docs/contract.md §3)."""
