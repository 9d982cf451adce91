"""Plate Review core: everything that is not Qt (scan, predict, train, store, export)."""
