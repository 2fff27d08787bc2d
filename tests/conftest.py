"""Shared pytest configuration.

Fixtures for real components (PostgreSQL, Secret Service) live in ``tests/realparts.py``;
factory fixtures (key rings, vaults) in ``tests/fixtures.py``. ``tests/hygiene.py`` fails the
run on a leaked secret, ``tests/tmpwatch.py`` on anything left in the temp directory.
"""

pytest_plugins = ["tests.hygiene", "tests.tmpwatch", "tests.realparts", "tests.fixtures"]
