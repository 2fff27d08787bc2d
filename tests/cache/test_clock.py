"""The wall clock stepping back and forward across TTL boundaries (an NTP correction, a
suspended VM): every validity decision follows the clock at the moment it is made, nothing
is lost, and nothing unreadable is left. The clock is injected (``vault._clock.now_ms``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import vault
from tests.helpers.backends import FakeClock
from vault import _clock
from vault.testing import MemorySource

T0 = 1_800_000_000_000
TTL = 300  # seconds
SKEW = 60  # seconds


def test_clock_steps_across_ttl_boundaries(make_vault: Callable[..., vault.Vault],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """During an outage the cached copy is served while valid at the current time, refused
    once the clock passes its TTL, served again when the clock steps back, refused as
    future-dated beyond the skew, and the source's value is back once it answers."""
    now = [T0]
    monkeypatch.setattr(_clock, "now_ms", lambda: now[0])
    v = make_vault(ttl=TTL, clock_skew=SKEW)
    source = MemorySource({"c1": "v0"})
    breaker_clock = FakeClock()
    cache = vault.FallbackCache(source, v, clock=breaker_clock)
    assert cache.get("c1") == "v0"
    source.fail_with()
    steps = [(T0 + TTL * 1000 - 1, "cache"), (T0 + TTL * 1000 + 1, None), (T0 + 1000, "cache"),
             (T0 - SKEW * 1000 - 1, None), (T0 - SKEW * 1000 + 1, "cache")]
    for moment, origin in steps:
        now[0] = moment
        if origin is None:
            with pytest.raises(vault.SourceUnavailableError):
                cache.fetch("c1")
        else:
            assert cache.fetch("c1").origin == origin
    assert v.names() == ["c1"] and not (v.directory / "quarantine").exists()
    now[0] = T0 + 10 * TTL * 1000  # far ahead: journaled writes still count
    assert cache.save("c1", "v1").journaled
    source.recover()
    breaker_clock.advance(cache.breaker.reset_after)
    now[0] = T0  # and back again before the replay
    assert cache.fetch("c1").origin == "source" and source.snapshot() == {"c1": "v1"}
