"""Tests of vault.keyfile: the keyfile document, strict parsing, and what its wraps bind."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import vault
from vault._crypto import kdf
from vault.errors import KeySourceError
from vault.keysources import ACTIVE, DECRYPT_ONLY, MAX_DIRS, RETIRED, Binding, KeyState
from vault.keysources import _keyfile as kf

SALT = bytes(range(16))
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2025, 2, 2, 3, 4, 5, tzinfo=UTC)
AUTH = "wrong passphrase (or the keyfile was modified)"
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def kek() -> bytes:
    """A key-encryption key from the cheap test profile."""
    return kdf.derive("keyfile test passphrase", SALT, kdf.TEST_PARAMS)


@pytest.fixture
def make_doc(kek: bytes) -> Callable[[], tuple[Doc, dict[str, vault.Key]]]:
    """Return a factory of keyfile documents: active + decrypt-only + retired keys."""
    def make() -> tuple[Doc, dict[str, vault.Key]]:
        active, older = vault.Key.generate(), vault.Key.generate()
        states = (KeyState(active.id, ACTIVE, T1), KeyState(older.id, DECRYPT_ONLY, T0),
                  KeyState("00000000000000aa", RETIRED, T0, T1))
        built = kf.build(kdf.TEST_PARAMS, SALT, kek, states, {k.id: k for k in (active, older)})
        return json.loads(kf.dumps(built)), {"active": active, "older": older}
    return make


def encode(doc: Any) -> bytes:
    """Serialize a (possibly tampered) document."""
    return json.dumps(doc).encode()


def test_round_trip(make_doc: Callable[[], tuple[Doc, dict[str, vault.Key]]], kek: bytes) -> None:
    """dumps, parse and unwrap_all give back the keys and the records."""
    doc, keys = make_doc()
    parsed = kf.parse(encode(doc), "kf")
    assert parsed.params == kdf.TEST_PARAMS and parsed.salt == SALT
    assert [s.state for s in parsed.states] == [ACTIVE, DECRYPT_ONLY, RETIRED]
    assert parsed.states[2].retired_at == T1
    unwrapped = kf.unwrap_all(parsed, kek, "kf")
    assert unwrapped == {k.id: k for k in keys.values()}


def test_document_shape(make_doc: Callable[[], tuple[Doc, dict[str, vault.Key]]]) -> None:
    """The documented fields, sizes and time format; retired records carry no material."""
    doc, keys = make_doc()
    assert set(doc) == {"format", "version", "kdf", "keys"}
    assert doc["format"] == "credvault-keyfile" and doc["version"] == 1
    assert doc["kdf"] == {"alg": "argon2id", "salt": "AAECAwQFBgcICQoLDA0ODw==",
                          "params": {"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1}}
    active, _, retired = doc["keys"]
    assert active["id"] == keys["active"].id and active["created_at"] == "2025-02-02T03:04:05Z"
    assert set(active) == {"id", "state", "created_at", "wrapped"} and len(active["wrapped"]) == 80
    assert set(retired) == {"id", "state", "created_at", "retired_at"}
    text = json.dumps(doc)
    for key in keys.values():
        assert key.to_text().split(":")[2] not in text


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return change


_DELETE = object()


def _flip_wrapped(position: int) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        import base64
        raw = bytearray(base64.b64decode(doc["keys"][0]["wrapped"]))
        raw[position] ^= 1
        doc["keys"][0]["wrapped"] = base64.b64encode(bytes(raw)).decode()
    return change


def _swap_states(doc: Doc) -> None:
    doc["keys"][0]["state"], doc["keys"][1]["state"] = DECRYPT_ONLY, ACTIVE


# Each change fails authentication: the values are well-formed but not the ones bound.
AUTH_FAILURES: dict[str, Callable[[Doc], None]] = {
    "time_cost": _set("kdf.params.time_cost", 2),
    "memory": _set("kdf.params.memory_cost_kib", 16),
    "salt": _set("kdf.salt", "AAAAAAAAAAAAAAAAAAAAAA=="),
    "created_at": _set("keys.0.created_at", "2025-02-02T03:04:06Z"),
    "older created_at": _set("keys.1.created_at", "2024-02-02T03:04:05Z"),
    "retired_at": _set("keys.2.retired_at", "2025-03-02T03:04:05Z"),
    "retired id": _set("keys.2.id", "00000000000000bb"),
    "states swapped": _swap_states,
    "record dropped": _set("keys.2", _DELETE),
    "wrapped first byte": _flip_wrapped(0),
    "wrapped middle byte": _flip_wrapped(30),
    "wrapped last byte": _flip_wrapped(59),
}


@pytest.mark.parametrize("change", AUTH_FAILURES.values(), ids=AUTH_FAILURES.keys())
def test_changed_bound_field_fails_authentication(
        make_doc: Callable[[], tuple[Doc, dict[str, vault.Key]]], kek: bytes,
        change: Callable[[Doc], None]) -> None:
    """Changing params, salt, ids, states, dates, records or material fails to unwrap."""
    doc, _ = make_doc()
    change(doc)
    parsed = kf.parse(encode(doc), "kf")
    with pytest.raises(KeySourceError) as caught:
        kf.unwrap_all(parsed, kek, "kf")
    assert caught.value.message == AUTH or "was modified" in caught.value.message


def test_decrypt_only_wrap_moved_to_another_record_is_detected(
        make_doc: Callable[[], tuple[Doc, dict[str, vault.Key]]], kek: bytes) -> None:
    """A later wrap that fails (the first one opened) says the keyfile was modified."""
    doc, _ = make_doc()
    doc["keys"][1]["wrapped"] = doc["keys"][0]["wrapped"]
    with pytest.raises(KeySourceError, match=r"key [0-9a-f]{16}: failed authentication"):
        kf.unwrap_all(kf.parse(encode(doc), "kf"), kek, "kf")


# Each change is refused by the parser, which names the field, before any hashing.
STRUCTURE: dict[str, tuple[Callable[[Doc], None], str]] = {
    "format": (_set("format", "other"), "format"),
    "version 2": (_set("version", 2), "version"),
    "version str": (_set("version", "1"), "version"),
    "version bool": (_set("version", True), "version"),
    "extra top key": (_set("comment", "x"), "document"),
    "missing kdf": (_set("kdf", _DELETE), "document"),
    "alg": (_set("kdf.alg", "scrypt"), "kdf.alg"),
    "params extra": (_set("kdf.params.version", 19), "kdf.params"),
    "params bool": (_set("kdf.params.parallelism", True), "kdf.params"),
    "huge memory": (_set("kdf.params.memory_cost_kib", 2**40), "kdf.params"),
    "huge time": (_set("kdf.params.time_cost", 10**6), "kdf.params"),
    "many lanes": (_set("kdf.params.parallelism", 4096), "kdf.params"),
    "short salt": (_set("kdf.salt", "AAAA"), "kdf.salt"),
    "salt not canonical": (_set("kdf.salt", "AAECAwQFBgcICQoLDA0ODx=="), "kdf.salt"),
    "salt not base64": (_set("kdf.salt", "!!ECAwQFBgcICQoLDA0ODw=="), "kdf.salt"),
    "keys empty": (_set("keys", []), "keys"),
    "keys object": (_set("keys", {}), "keys"),
    "bad state": (_set("keys.0.state", "primary"), "keys[0].state"),
    "bad id": (_set("keys.0.id", "ABCDEF0123456789"), "keys[0].id"),
    "bad time": (_set("keys.0.created_at", "2025-02-02 03:04:05"), "keys[0].created_at"),
    "impossible date": (_set("keys.0.created_at", "2025-02-30T03:04:05Z"), "keys[0].created_at"),
    "extra record key": (_set("keys.0.note", "x"), "keys[0]"),
    "retired with material": (_set("keys.2.wrapped", "AAAA"), "keys[2]"),
    "live without material": (_set("keys.1.wrapped", _DELETE), "keys[1]"),
    "short wrapped": (_set("keys.0.wrapped", "AAAA"), "keys[0].wrapped"),
    "two active": (_set("keys.1.state", ACTIVE), "exactly one active"),
    "no active": (_set("keys.0.state", RETIRED), "keys[0]"),
    "same id twice": (_set("keys.1.id", "00000000000000aa"), "same key id twice"),
}


@pytest.mark.parametrize(("change", "field"), STRUCTURE.values(), ids=STRUCTURE.keys())
def test_malformed_field_is_named(make_doc: Callable[[], tuple[Doc, dict[str, vault.Key]]],
                                  change: Callable[[Doc], None], field: str) -> None:
    """Every malformed field is a KeySourceError naming it, with a restore hint."""
    doc, _ = make_doc()
    change(doc)
    with pytest.raises(KeySourceError) as caught:
        kf.parse(encode(doc), "/v/keyfile.json")
    assert caught.value.message.startswith("/v/keyfile.json: ")
    assert field in caught.value.message and caught.value.hint


@pytest.mark.parametrize(("data", "label"), [
    (b"\xff\xfe{}", "not UTF-8"), (b"[" * 5000 + b"]" * 5000, "deep nesting"),
    (b'{"format": "credvault-keyfile", "format": "x"}', "duplicate key"),
    (b'{"version": NaN}', "NaN"), (b"{} trailing", "trailing data"), (b"", "empty"),
    (b'{"version": 1' + b"0" * 5000 + b"}", "4000-digit integer"),
    (b" " * (kf.MAX_KEYFILE_SIZE + 1), "over 64 KiB"),
])
def test_not_json_is_refused(data: bytes, label: str) -> None:
    """Bytes that are not strict, bounded JSON are refused as a document error."""
    with pytest.raises(KeySourceError, match="document"):
        kf.parse(data, "kf")


def test_hostile_params_are_refused_fast(
        make_doc: Callable[[], tuple[Doc, dict[str, vault.Key]]]) -> None:
    """A keyfile asking for 1 TiB and a million passes is refused in milliseconds."""
    doc, _ = make_doc()
    doc["kdf"]["params"] = {"time_cost": 10**6, "memory_cost_kib": 2**30, "parallelism": 1}
    start = time.perf_counter()
    with pytest.raises(KeySourceError, match=r"kdf\.params"):
        kf.parse(encode(doc), "kf")
    assert time.perf_counter() - start < 0.05


def test_aad_is_canonical_and_names_the_key(
        make_doc: Callable[[], tuple[Doc, dict[str, vault.Key]]]) -> None:
    """The aad of a wrap is deterministic, differs per key id, and ignores JSON formatting."""
    doc, keys = make_doc()
    parsed = kf.parse(encode(doc), "kf")
    reformatted = kf.parse(json.dumps(copy.deepcopy(doc), indent=7).encode(), "kf")
    a = kf.wrap_aad(parsed.params, parsed.salt, parsed.states, keys["active"].id)
    assert a == kf.wrap_aad(reformatted.params, reformatted.salt, reformatted.states,
                            keys["active"].id)
    assert a != kf.wrap_aad(parsed.params, parsed.salt, parsed.states, keys["older"].id)
    assert a.startswith(b"credvault keyfile v1 wrap\0")


# ---- the vault binding (issue 11: the vault id and audit head anchored in the key source)

BOUND = Binding("ab" * 16, (("/srv/app/vault", "cd" * 32), ("/srv/other", None)))


@pytest.fixture
def bound_doc(kek: bytes) -> Doc:
    """A keyfile document with a ``vault`` binding."""
    active = vault.Key.generate()
    states = (KeyState(active.id, ACTIVE, T1),)
    return json.loads(kf.dumps(kf.build(kdf.TEST_PARAMS, SALT, kek, states, {active.id: active},
                                        BOUND)))


def test_binding_round_trips_and_is_optional(bound_doc: Doc, kek: bytes,
                                             make_doc: Callable[[], tuple[Doc, Any]]) -> None:
    """A bound keyfile gives its binding back; an older keyfile without one parses as
    before (its wraps' associated data did not change)."""
    parsed = kf.parse(encode(bound_doc), "kf")
    assert parsed.binding == BOUND and len(kf.unwrap_all(parsed, kek, "kf")) == 1
    assert bound_doc["vault"] == {"id": "ab" * 16,
                                  "dirs": [["/srv/app/vault", "cd" * 32], ["/srv/other", None]]}
    unbound, _ = make_doc()
    assert kf.parse(encode(unbound), "kf").binding is None
    states = kf.parse(encode(unbound), "kf").states
    assert kf.wrap_aad(kdf.TEST_PARAMS, SALT, states, "k") == kf.wrap_aad(
        kdf.TEST_PARAMS, SALT, states, "k", None)


BINDING_FORGERIES: dict[str, Callable[[Doc], None]] = {
    "vault id": _set("vault.id", "ef" * 16),
    "anchored head": _set("vault.dirs.0.1", "00" * 32),
    "head cleared": _set("vault.dirs.0.1", None),
    "directory dropped": _set("vault.dirs.1", _DELETE),
    "binding removed": _set("vault", _DELETE),
}


@pytest.mark.parametrize("change", BINDING_FORGERIES.values(), ids=BINDING_FORGERIES.keys())
def test_changed_binding_fails_authentication(bound_doc: Doc, kek: bytes,
                                              change: Callable[[Doc], None]) -> None:
    """A writer without the passphrase cannot change, drop or roll back the binding."""
    change(bound_doc)
    with pytest.raises(KeySourceError, match="wrong passphrase"):
        kf.unwrap_all(kf.parse(encode(bound_doc), "kf"), kek, "kf")


def test_binding_added_to_an_unbound_keyfile_fails_authentication(
        make_doc: Callable[[], tuple[Doc, Any]], kek: bytes) -> None:
    doc, _ = make_doc()
    doc["vault"] = BOUND.to_json()
    with pytest.raises(KeySourceError, match="wrong passphrase"):
        kf.unwrap_all(kf.parse(encode(doc), "kf"), kek, "kf")


BINDING_STRUCTURE: dict[str, tuple[Callable[[Doc], None], str]] = {
    "id short": (_set("vault.id", "ab"), "vault.id"),
    "id upper": (_set("vault.id", "AB" * 16), "vault.id"),
    "dirs object": (_set("vault.dirs", {}), "vault.dirs"),
    "relative path": (_set("vault.dirs.0.0", "srv/app"), "vault.dirs[0]"),
    "control character": (_set("vault.dirs.0.0", "/srv/\napp"), "vault.dirs[0]"),
    "bad head": (_set("vault.dirs.0.1", "xyz"), "vault.dirs[0]"),
    "not a pair": (_set("vault.dirs.0", ["/srv"]), "vault.dirs[0]"),
    "repeated": (_set("vault.dirs.1.0", "/srv/app/vault"), "repeats a directory"),
    "extra key": (_set("vault.note", "x"), "vault"),
}


@pytest.mark.parametrize(("change", "field"), BINDING_STRUCTURE.values(),
                         ids=BINDING_STRUCTURE.keys())
def test_malformed_binding_is_named(bound_doc: Doc, change: Callable[[Doc], None],
                                    field: str) -> None:
    change(bound_doc)
    with pytest.raises(KeySourceError) as caught:
        kf.parse(encode(bound_doc), "/v/keyfile.json")
    assert field in caught.value.message


def test_binding_keeps_the_most_recent_directories() -> None:
    """with_dir moves a directory to the end and keeps at most MAX_DIRS; a path that is too
    long or not printable is not recorded."""
    binding = Binding("ab" * 16)
    for i in range(MAX_DIRS + 3):
        binding = binding.with_dir(f"/d/{i}")
    assert len(binding.dirs) == MAX_DIRS and binding.dirs[0][0] == "/d/3"
    binding = binding.with_dir("/d/3", "cd" * 32)
    assert binding.dirs[-1] == ("/d/3", "cd" * 32)
    assert binding.with_dir("/d/3").head_of("/d/3") == "cd" * 32  # kept when not given
    assert binding.with_dir("/x\n") == binding and binding.with_dir("/" + "a" * 2000) == binding
