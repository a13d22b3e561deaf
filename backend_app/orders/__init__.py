"""Orders: placing them without overselling, and listing a user's orders."""
