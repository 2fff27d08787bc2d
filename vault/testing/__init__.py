"""Helpers for testing code that uses credseal: in-memory sources and source contract suites.

- :class:`MemorySource` / :class:`AsyncMemorySource`: sources in a dict, with switches that
  simulate an outage (``fail_with``/``recover``) and a log of the calls they received.
- :class:`MemoryTier`: a shared tier (``vault.cache.SharedTier``) in a dict, shared by the
  caches of several "hosts" in one test, with ``fail_with``/``recover``, ``clear`` (a Redis
  that restarted empty) and ``plant`` (an attacker's record).
- :class:`SourceContract` / :class:`AsyncSourceContract`: the behaviour every source must have
  (keyring's ``testing/backend.py`` style); :class:`VersionedSourceContract` /
  :class:`AsyncVersionedSourceContract` add those of a ``vault.sources.VersionedSource``.
  Subclass one in your test suite and give it a ``source`` fixture returning a fresh source
  on an empty store (the same for :class:`SharedTierContract` and a ``tier`` fixture)::

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
from vault.testing._tier import MemoryTier

__all__ = ["AsyncMemorySource", "AsyncSourceContract", "AsyncVersionedSourceContract",
           "MemorySource", "MemoryTier", "SharedTierContract", "SourceContract",
           "VersionedSourceContract", "cheap_kdf_profile"]
_SUITES = frozenset({"SourceContract", "AsyncSourceContract", "VersionedSourceContract",
                     "AsyncVersionedSourceContract", "SharedTierContract"})


def __getattr__(name: str) -> Any:
    if name in _SUITES:
        from vault.testing import _contracts  # imports pytest, which a service does not need

        return getattr(_contracts, name)
    raise AttributeError(f"module 'vault.testing' has no attribute {name!r}")
