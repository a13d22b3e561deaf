"""User accounts: storage, admin management."""
