"""Shared pytest configuration.

Fixtures for real components (PostgreSQL, Secret Service) live in ``tests/realparts.py``;
factory fixtures (key rings, vaults) in ``tests/fixtures.py``.
"""

pytest_plugins = ["tests.hygiene", "tests.realparts", "tests.fixtures"]
