"""The unified audit event table."""
