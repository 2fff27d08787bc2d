"""Factory fixtures shared by the test modules (registered in conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import vault
from tests.helpers.clirunner import Cli, cli_runner


@pytest.fixture
def ring() -> vault.KeyRing:
    """A fresh key ring of one key."""
    return vault.KeyRing([vault.Key.generate()])


@pytest.fixture
def make_vault(tmp_path: Path, ring: vault.KeyRing) -> Callable[..., vault.Vault]:
    """Return a factory of vaults in this test's temp directory, all on ``ring`` by default."""
    def make(directory_name: str = "vault", **kwargs: Any) -> vault.Vault:
        kwargs.setdefault("keys", ring)
        return vault.Vault(tmp_path / directory_name, **kwargs)
    return make


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A credseal runner in this test's temp directory, with no CREDSEAL_* variables; at
    teardown no secret it knows may appear in any output (tests/helpers/clirunner.py)."""
    yield from cli_runner(tmp_path, dict(os.environ))
