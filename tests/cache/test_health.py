"""Tests of vault.health: the degraded flag and rate-limited events."""

from __future__ import annotations

import logging

import pytest

from tests.helpers.backends import FakeClock
from vault.cache._health import CacheEvent, Health, describe


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock."""
    return FakeClock()


def test_degraded_then_still_degraded_then_recovered(clock: FakeClock) -> None:
    """Entering is reported at once, reminders once per interval, the end once."""
    events: list[CacheEvent] = []
    health = Health(warn_interval=60, on_event=events.append, clock=clock)
    cause = ConnectionRefusedError("refused")
    for _ in range(5):
        health.degraded_call(cause, "served 'a'", "a", 1.0)
    clock.advance(60)
    health.degraded_call(cause, "served 'a'", "a", 61.0)
    health.recovered()
    health.recovered()
    assert [e.kind for e in events] == ["degraded", "still_degraded", "recovered"]
    assert events[0].cause == "ConnectionRefusedError: refused" and events[0].age_seconds == 1.0
    assert "4 similar calls" in events[1].message and not health.degraded
    assert events[2].level == logging.WARNING


def test_limited_is_per_key(clock: FakeClock) -> None:
    """limited() lets one event per key through per interval."""
    health = Health(warn_interval=10, on_event=None, clock=clock)
    assert health.limited("a") and health.limited("b") and not health.limited("a")
    clock.advance(10)
    assert health.limited("a")


def test_describe_keeps_one_short_line() -> None:
    """describe() gives the class and the first line of the message, at most 300 chars."""
    assert describe(OSError("first\nsecond")) == "OSError: first"
    assert describe(RuntimeError()) == "RuntimeError"
    assert len(describe(ValueError("x" * 1000))) == 300


def test_events_reach_the_vault_cache_logger(clock: FakeClock,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Events are logged on vault.cache with the event attached to the record."""
    health = Health(warn_interval=60, on_event=None, clock=clock)
    with caplog.at_level(logging.INFO, logger="vault.cache"):
        health.emit("replayed", logging.INFO, "replayed 2")
    [record] = [r for r in caplog.records if r.name == "vault.cache"]
    assert record.credseal_event.kind == "replayed"  # type: ignore[attr-defined]
