"""Orders: placing them without overselling, and listing a user's orders (docs/contract.md §1, §5)."""
