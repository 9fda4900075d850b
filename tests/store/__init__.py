"""Tests of the state store, on SQLite and on a real PostgreSQL."""
