"""Key-state records and their transitions, shared by the keyring and keyfile sources.

A record is ``{"id", "state", "created_at"[, "retired_at"]}`` in strict JSON (times as
``YYYY-MM-DDTHH:MM:SSZ``); the keyfile adds the wrapped material of live keys, the OS keyring
index stores records only. Parsing is strict (exact key sets, canonical forms) and every error
is a :class:`~vault.errors.KeySourceError` naming the field, never echoing a value.

The transitions return new tuples of records and enforce the rules: exactly one active key;
``add`` makes a decrypt-only key; ``promote`` makes a key active and the old active one
decrypt-only; ``retire`` never applies to the active key and keeps the record with
``retired_at``; ``trimmed`` drops the oldest retired records when storage is short.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from vault._crypto.keys import ACTIVE, DECRYPT_ONLY, KEY_STATES, RETIRED, Key, KeyRing, KeyState
from vault.errors import KeySourceError

__all__ = [
    "check_states", "exact_keys", "find", "format_time", "invalid", "loads_strict", "now",
    "parse_state", "parse_time", "ring_from", "state_to_json", "trimmed", "with_added",
    "with_promoted", "with_retired",
]

_ID = re.compile(r"[0-9a-f]{16}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_HINT = ("it must not be edited by hand: restore it from backup, and check that CREDSEAL_DIR "
         "(or CREDSEAL_KEYRING_SERVICE) names the right vault")


def invalid(where: str, what: str, problem: str) -> NoReturn:
    """Raise ``KeySourceError`` "<where>: <what>: <problem>" with the restore-from-backup hint."""
    raise KeySourceError(f"{where}: {what}: {problem}", hint=_HINT)


def format_time(moment: datetime) -> str:
    """Return ``moment`` as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(value: object, where: str, what: str) -> datetime:
    """Parse a ``YYYY-MM-DDTHH:MM:SSZ`` string strictly (canonical form only)."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        invalid(where, what, "must be a UTC time like 2025-01-31T12:00:00Z")
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        invalid(where, what, "is not a valid date and time")


def exact_keys(obj: object, expected: set[str], where: str, what: str) -> dict[str, Any]:
    """Return ``obj`` if it is a JSON object with exactly the keys ``expected``."""
    if not isinstance(obj, dict):
        invalid(where, what, "must be a JSON object")
    if set(obj) != expected:
        missing, extra = sorted(expected - set(obj)), sorted(set(obj) - expected)
        invalid(where, what, f"must have exactly the keys {', '.join(sorted(expected))} "
                           f"(missing: {', '.join(missing) or 'none'}; "
                           f"unexpected: {', '.join(extra) or 'none'})")
    return obj


def state_to_json(state: KeyState) -> dict[str, str]:
    """Return the JSON record of ``state``: id, state, created_at (and retired_at)."""
    if state.created_at is None:
        raise KeySourceError(f"key {state.id} has no creation time")
    record = {"id": state.id, "state": state.state, "created_at": format_time(state.created_at)}
    if state.state == RETIRED:
        record["retired_at"] = format_time(state.retired_at or state.created_at)
    return record


def parse_state(obj: object, where: str, what: str, *,
                material_field: str | None) -> tuple[KeyState, dict[str, Any]]:
    """Parse one key-state record strictly; returns the state and the raw record.

    Live records (active, decrypt-only) have exactly id, state, created_at and, when
    ``material_field`` is given, that field too; retired records have id, state, created_at,
    retired_at and never material.
    """
    state = obj.get("state") if isinstance(obj, dict) else None
    if state not in KEY_STATES:
        invalid(where, f"{what}.state", f"must be one of {', '.join(KEY_STATES)}")
    expected = {"id", "state", "created_at"}
    if state == RETIRED:
        expected.add("retired_at")
    elif material_field is not None:
        expected.add(material_field)
    record = exact_keys(obj, expected, where, what)
    key_id = record["id"]
    if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
        invalid(where, f"{what}.id", "must be 16 lowercase hex digits")
    created = parse_time(record["created_at"], where, f"{what}.created_at")
    retired = (parse_time(record["retired_at"], where, f"{what}.retired_at")
               if state == RETIRED else None)
    return KeyState(id=key_id, state=state, created_at=created, retired_at=retired), record


def check_states(states: tuple[KeyState, ...], where: str) -> None:
    """Require unique ids and exactly one active key."""
    ids = [s.id for s in states]
    if len(set(ids)) != len(ids):
        invalid(where, "keys", "holds the same key id twice")
    if sum(s.state == ACTIVE for s in states) != 1:
        invalid(where, "keys", "must hold exactly one active key")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")  # turned into a KeySourceError by the caller
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes, where: str, max_size: int) -> Any:
    """Decode strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, bounded size."""
    if len(data) > max_size:
        invalid(where, "document", f"is over {max_size} bytes")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        invalid(where, "document", "is not valid JSON (or repeats a key)")



# ---- transitions -----------------------------------------------------------------------------

def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def unknown(key_id: str) -> NoReturn:
    raise KeySourceError(f"key {key_id} is not in the key source",
                         hint="list the key ids with `credseal status`")


def find(states: tuple[KeyState, ...], key_id: str) -> KeyState:
    return next((s for s in states if s.id == key_id), None) or unknown(key_id)


def with_added(states: tuple[KeyState, ...], key: Key) -> tuple[KeyState, ...]:
    if any(s.id == key.id for s in states):
        raise KeySourceError(f"key {key.id} is already in the key source")
    return (*states, KeyState(key.id, DECRYPT_ONLY, now()))


def with_promoted(states: tuple[KeyState, ...], key_id: str) -> tuple[KeyState, ...]:
    target = find(states, key_id)
    if target.state == RETIRED:
        raise KeySourceError(f"key {key_id} is retired: its material is gone",
                             hint="add a new key and promote that one")
    return tuple(KeyState(s.id, ACTIVE, s.created_at) if s.id == key_id else
                 KeyState(s.id, DECRYPT_ONLY, s.created_at) if s.state == ACTIVE else s
                 for s in states)


def with_retired(states: tuple[KeyState, ...], key_id: str) -> tuple[KeyState, ...]:
    if find(states, key_id).state == ACTIVE:
        raise KeySourceError(f"key {key_id} is the active key and cannot be retired",
                             hint="promote another key first (`credseal rotate`)")
    return tuple(KeyState(s.id, RETIRED, s.created_at, now())
                 if s.id == key_id and s.state != RETIRED else s for s in states)


def trimmed(states: tuple[KeyState, ...],
             fits: Callable[[tuple[KeyState, ...]], bool]) -> tuple[KeyState, ...]:
    """Drop the oldest retired records (history only) until ``fits`` says the result fits."""
    while not fits(states):
        retired = [s for s in states if s.state == RETIRED]
        if not retired:
            raise KeySourceError("too many live keys to store",
                                 hint="retire keys that no entry uses any more")
        oldest = min(retired, key=lambda s: s.retired_at or s.created_at or now())
        states = tuple(s for s in states if s is not oldest)
    return states


def ring_from(states: tuple[KeyState, ...], keys: Mapping[str, Key]) -> KeyRing:
    """Active key first, then decrypt-only keys newest first; retired keys are left out."""
    active = [keys[s.id] for s in states if s.state == ACTIVE]
    older = sorted((s for s in states if s.state == DECRYPT_ONLY),
                   key=lambda s: s.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return KeyRing([*active, *(keys[s.id] for s in older)])
