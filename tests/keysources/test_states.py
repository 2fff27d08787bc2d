"""Tests of vault.keystates: key-state transitions and records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import vault
from vault.errors import KeySourceError
from vault.keysources import ACTIVE, DECRYPT_ONLY, RETIRED, KeyState
from vault.keysources import _states as ks

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ring_states(count: int) -> tuple[tuple[KeyState, ...], list[vault.Key]]:
    """One active key and count - 1 decrypt-only keys, each a day older than the previous."""
    keys = [vault.Key.generate() for _ in range(count)]
    states = tuple(KeyState(k.id, ACTIVE if i == 0 else DECRYPT_ONLY, T0 - timedelta(days=i))
                   for i, k in enumerate(keys))
    return states, keys


def test_promote_demotes_the_old_active_key() -> None:
    """Promoting a decrypt-only key makes it the only active one."""
    states, keys = ring_states(3)
    promoted = ks.with_promoted(states, keys[2].id)
    assert [s.state for s in promoted] == [DECRYPT_ONLY, DECRYPT_ONLY, ACTIVE]
    ks.check_states(promoted, "test")


def test_ring_order_active_then_newest() -> None:
    """The ring is the active key, then decrypt-only keys newest first; retired are left out."""
    states, keys = ring_states(4)
    states = ks.with_retired(states, keys[2].id)
    ring = ks.ring_from(states[::-1], {k.id: k for k in keys})
    assert ring.ids == (keys[0].id, keys[1].id, keys[3].id)


def test_trimmed_drops_oldest_retired_first() -> None:
    """When short of room, the oldest retired records go; live keys never do."""
    states, keys = ring_states(2)
    retired = tuple(KeyState(f"{i:016x}", RETIRED, T0, T0 + timedelta(days=i)) for i in range(5))
    trimmed = ks.trimmed(states + retired, lambda s: len(s) <= 4)
    assert [s.id for s in trimmed] == [keys[0].id, keys[1].id, f"{3:016x}", f"{4:016x}"]
    with pytest.raises(KeySourceError, match="too many live keys"):
        ks.trimmed(states, lambda s: len(s) <= 1)


def test_record_round_trip_and_strict_times() -> None:
    """state_to_json and parse_state are inverse; only the canonical time form parses."""
    state = KeyState("0123456789abcdef", RETIRED, T0, T0 + timedelta(seconds=1))
    record = ks.state_to_json(state)
    assert record == {"id": "0123456789abcdef", "state": "retired",
                      "created_at": "2025-01-01T00:00:00Z", "retired_at": "2025-01-01T00:00:01Z"}
    assert ks.parse_state(record, "w", "r", material_field=None)[0] == state
    for bad in ("2025-01-01T00:00:00+00:00", "2025-1-01T00:00:00Z", "2025-01-01T00:00:00.5Z",
                "\uff12\uff10\uff12\uff15-01-01T00:00:00Z", 1735689600):  # full-width digits
        with pytest.raises(KeySourceError, match="created_at"):
            ks.parse_state({**record, "created_at": bad}, "w", "r", material_field=None)
