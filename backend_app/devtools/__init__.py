"""Development tooling (embedded database launcher); not used by the production image."""
