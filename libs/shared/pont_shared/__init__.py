"""Pont's shared library: the event contract and the mechanisms every service relies on."""
