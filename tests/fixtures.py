"""Factory fixtures shared by the test modules (registered in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vault


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
