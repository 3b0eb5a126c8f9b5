"""Event bus tests."""
