"""Cross-cutting infrastructure: database, errors, pagination, shared types."""
