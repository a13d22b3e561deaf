"""Authentication: tokens, login flows and the request's current user (spec §3)."""
