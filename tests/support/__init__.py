"""Helpers for the tests: real broker, real database files, real worker processes."""
