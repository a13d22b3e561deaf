"""Authentication: tokens, login flows and the request's current user."""
