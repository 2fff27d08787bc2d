"""Helpers for testing code that uses credseal: in-memory sources and source contract suites.

- :class:`MemorySource` / :class:`AsyncMemorySource`: sources in a dict, with switches that
  simulate an outage (``fail_with``/``recover``) and a log of the calls they received.
- :class:`SourceContract` / :class:`AsyncSourceContract`: the behaviour every source must have
  (keyring's ``testing/backend.py`` style). Subclass one in your test suite and give it a
  ``source`` fixture returning a fresh source on an empty store::

      class TestMySource(vault.testing.SourceContract):
          @pytest.fixture
          def source(self):
              with MySource(...) as source:
                  yield source

Importing this package needs no pytest; the contract suites import it when first asked for.
``cheap_kdf_profile`` is the Argon2id profile named "test": for tests only, never for keys.
"""

from __future__ import annotations

from typing import Any

from vault._crypto.kdf import TEST_PARAMS as cheap_kdf_profile
from vault.testing._memory import AsyncMemorySource, MemorySource

__all__ = ["AsyncMemorySource", "AsyncSourceContract", "MemorySource", "SourceContract",
           "cheap_kdf_profile"]
_SUITES = frozenset({"SourceContract", "AsyncSourceContract"})


def __getattr__(name: str) -> Any:
    if name in _SUITES:
        from vault.testing import _contracts  # imports pytest, which a service does not need

        return getattr(_contracts, name)
    raise AttributeError(f"module 'vault.testing' has no attribute {name!r}")
