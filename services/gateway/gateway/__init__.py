"""Pont's gateway: the public HTTP API (API.md)."""
