"""Authentication: tokens, login flows and the request's current user (docs/contract.md §3)."""
