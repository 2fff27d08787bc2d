"""Tests of vault.store: the Vault of encrypted entry files."""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vault
from tests.realparts import require
from vault._store.entries import name_stem
from vault._store.store import entries_of
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    EntryExpiredError,
    EntryNotFoundError,
    FormatError,
    InsecureFileError,
    KeySourceError,
    SerializationError,
    UnknownKeyError,
)

ROOT = Path(__file__).resolve().parents[2]
CRED = {
    "noiseKey": {"private": os.urandom(32), "public": os.urandom(32)},
    "registrationId": 1234,
    "advSecretKey": "c2VjcmV0LWxvb2tpbmctYmFzZTY0",
    "me": {"id": "4915100000000:1@s.whatsapp.net", "name": "Shop"},
    "signalIdentities": [{"identifier": {"name": "x", "deviceId": 0},
                          "identifierKey": os.urandom(33)}],
}


def entry_file(v: vault.Vault, name: str) -> Path:
    """Return the path of the file that holds entry ``name``."""
    return v.directory / f"{name_stem(name)}.cve"


def test_put_get_round_trip_with_bytes(make_vault: Callable[..., vault.Vault]) -> None:
    """A Baileys-like credential comes back equal, bytes as bytes."""
    v = make_vault()
    v.put("company-1", CRED)
    got = v.get("company-1")
    assert got == CRED and type(got["noiseKey"]["private"]) is bytes


@pytest.mark.parametrize("value", [None, True, 0, -1.5, "text", b"\x00\xff", [], {}, [b"a", 1]])
def test_any_top_level_type(make_vault: Callable[..., vault.Vault], value: Any) -> None:
    """Any codec value can be stored at top level."""
    v = make_vault()
    v.put("x", value)
    assert v.get("x") == value and type(v.get("x")) is type(value)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=20),
    name=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                 max_size=40))
def test_round_trip_property(make_vault: Callable[..., vault.Vault], value: Any,
                             name: str) -> None:
    """Every value and every valid name round-trips through a file."""
    v = make_vault(directory_name="prop")
    v.put(name, value)
    assert v.get(name) == value
    assert name in v.names()


def test_file_is_ciphertext_with_private_mode(make_vault: Callable[..., vault.Vault]) -> None:
    """The file holds no plaintext, has mode 0600, and the directory is 0700."""
    v = make_vault()
    v.put("company-1", {"token": "very-secret-token-value"})
    path = entry_file(v, "company-1")
    data = path.read_bytes()
    assert data.startswith(b"CVLT") and b"very-secret-token-value" not in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(v.directory.stat().st_mode) == 0o700


def test_directory_created_0700_even_with_permissive_umask(tmp_path: Path,
                                                             ring: vault.KeyRing) -> None:
    """A new vault directory is 0700 whatever the umask."""
    old = os.umask(0)
    try:
        v = vault.Vault(tmp_path / "a" / "b", keys=ring)
        v.put("x", 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(v.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry_file(v, "x").stat().st_mode) == 0o600


def test_missing_entry_and_idempotent_delete(make_vault: Callable[..., vault.Vault]) -> None:
    """get of a missing name is EntryNotFoundError (a KeyError); delete is idempotent."""
    v = make_vault()
    with pytest.raises(EntryNotFoundError) as info:
        v.get("nope")
    assert isinstance(info.value, KeyError) and str(info.value) == "no entry named 'nope'"
    v.put("x", 1)
    v.delete("x")
    v.delete("x")
    v.delete("never-existed")
    with pytest.raises(EntryNotFoundError):
        v.get("x")
    assert v.names() == []


def test_names_sorted_and_keyless(make_vault: Callable[..., vault.Vault]) -> None:
    """names() is sorted, includes expired entries, and works without any key."""
    v = make_vault(ttl=1)
    for name in ("b", "a", "c/with/slashes", "../escape", "é"):
        v.put(name, name)
    entries_of(v).put("old", 1, 0)
    keyless = vault.Vault(v.directory)
    expected = sorted(["b", "a", "c/with/slashes", "../escape", "é", "old"])
    assert keyless.names() == expected == v.names()
    with pytest.raises(KeySourceError):
        keyless.get("a")
    assert all(p.parent == v.directory for p in v.directory.glob("*.cve"))


def test_info_reads_header_without_key(make_vault: Callable[..., vault.Vault]) -> None:
    """info() reports key id, times and size from the header."""
    v = make_vault(ttl=300)
    entries_of(v).put("x", "value", 1_700_000_000_000)
    info = vault.Vault(v.directory).info("x")
    assert info.key_id == v.keys.primary.id and info.size == entry_file(v, "x").stat().st_size
    assert info.created_at.timestamp() == 1_700_000_000
    assert (info.expires_at - info.created_at) == timedelta(seconds=300)
    with pytest.raises(EntryNotFoundError):
        v.info("missing")


def test_read_returns_metadata_and_hides_value(make_vault: Callable[..., vault.Vault]) -> None:
    """read() gives authenticated times and key id; its repr never shows the value."""
    v = make_vault()
    v.put("x", {"password": "hunter2-secret"})
    entry = v.read("x")
    assert entry.value == {"password": "hunter2-secret"} and entry.key_id == v.keys.primary.id
    assert "hunter2" not in repr(entry)


def test_get_reads_the_file_every_time(make_vault: Callable[..., vault.Vault],
                                       ring: vault.KeyRing) -> None:
    """A second Vault object sees writes of the first at once (no in-memory cache)."""
    a = make_vault()
    b = vault.Vault(a.directory, keys=ring)
    a.put("x", 1)
    assert b.get("x") == 1
    a.put("x", 2)
    assert b.get("x") == 2


# ---- limits and bad input ------------------------------------------------------------------

def test_entry_size_limit(make_vault: Callable[..., vault.Vault]) -> None:
    """Values over max_entry_size raise SerializationError; the limit is configurable."""
    v = make_vault(max_entry_size=1000)
    v.put("ok", "x" * 900)
    with pytest.raises(SerializationError, match="over the entry limit of 1000"):
        v.put("big", "x" * 1000)
    assert "big" not in v.names()


def test_default_size_limit_is_one_mib(make_vault: Callable[..., vault.Vault]) -> None:
    """The default entry limit is 1 MiB of serialized value."""
    v = make_vault()
    with pytest.raises(SerializationError):
        v.put("big", b"x" * (1024 * 1024))


def test_bad_names_are_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """Empty, over-long and control-character names raise FormatError before any write."""
    v = make_vault()
    for name in ("", "x" * 1025, "a\nb"):
        with pytest.raises(FormatError):
            v.put(name, 1)
    assert v.names() == []


def test_unserializable_value_names_path_not_value(make_vault: Callable[..., vault.Vault]) -> None:
    """A value the codec cannot hold raises SerializationError naming the path."""
    v = make_vault()
    with pytest.raises(SerializationError) as info:
        v.put("x", {"creds": {"bad": {1, 2}}})
    assert "creds" in str(info.value)


@pytest.mark.parametrize("kwargs", [dict(ttl=0), dict(ttl=-5), dict(ttl=timedelta(0)),
                                    dict(ttl="300"), dict(max_entry_size=0),
                                    dict(lock_timeout=0), dict(clock_skew=-1)])
def test_bad_configuration(tmp_path: Path, ring: vault.KeyRing, kwargs: dict[str, Any]) -> None:
    """Non-positive ttl, size or timeout are ConfigurationError (also ValueError)."""
    with pytest.raises(ConfigurationError):
        vault.Vault(tmp_path / "v", keys=ring, **kwargs)


def test_ttl_accepts_timedelta(tmp_path: Path, ring: vault.KeyRing) -> None:
    """ttl may be a timedelta."""
    assert vault.Vault(tmp_path / "v", keys=ring, ttl=timedelta(minutes=5)).ttl == 300


# ---- TTL boundaries ------------------------------------------------------------------------

T0 = 1_700_000_000_000


def test_ttl_boundaries(make_vault: Callable[..., vault.Vault]) -> None:
    """Valid up to and including created_at + ttl, refused one millisecond later."""
    v = make_vault(ttl=300)
    entries_of(v).put("x", 1, T0)
    assert entries_of(v).load("x", T0)[1] == 1
    assert entries_of(v).load("x", T0 + 300_000)[1] == 1
    with pytest.raises(EntryExpiredError, match="expired"):
        entries_of(v).load("x", T0 + 300_001)


def test_reader_ttl_shorter_than_writer(make_vault: Callable[..., vault.Vault],
                                        ring: vault.KeyRing) -> None:
    """A reader with a shorter TTL refuses entries older than its own TTL."""
    writer = make_vault(ttl=3600)
    entries_of(writer).put("x", 1, T0)
    reader = vault.Vault(writer.directory, keys=ring, ttl=60)
    assert entries_of(reader).load("x", T0 + 60_000)[1] == 1
    with pytest.raises(EntryExpiredError):
        entries_of(reader).load("x", T0 + 60_001)
    assert entries_of(writer).load("x", T0 + 60_001)[1] == 1


def test_reader_ttl_longer_than_writer(make_vault: Callable[..., vault.Vault],
                                       ring: vault.KeyRing) -> None:
    """The writer's expires_at also binds a reader with a longer TTL."""
    writer = make_vault(ttl=60)
    entries_of(writer).put("x", 1, T0)
    reader = vault.Vault(writer.directory, keys=ring, ttl=3600)
    with pytest.raises(EntryExpiredError):
        entries_of(reader).load("x", T0 + 60_001)


def test_future_dated_entries(make_vault: Callable[..., vault.Vault]) -> None:
    """An entry created beyond the clock skew in the future is refused; within it, accepted."""
    v = make_vault(ttl=300, clock_skew=60)
    entries_of(v).put("x", 1, T0 + 60_000)
    assert entries_of(v).load("x", T0)[1] == 1
    entries_of(v).put("y", 1, T0 + 60_001)
    with pytest.raises(EntryExpiredError, match="future"):
        entries_of(v).load("y", T0)


def test_expiry_checked_only_after_authentication(make_vault: Callable[..., vault.Vault]) -> None:
    """A tampered expired entry reports the tampering, not the expiry."""
    v = make_vault(ttl=1)
    entries_of(v).put("x", 1, T0)
    path = entry_file(v, "x")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        entries_of(v).load("x", T0 + 10_000_000)


# ---- tampering ----------------------------------------------------------------------------

HEADER_FIELDS = {"magic": 0, "version": 4, "kind": 5, "key_id": 6, "salt": 14, "nonce": 46,
                 "commitment": 58, "created_at": 90, "expires_at": 98, "payload_length": 106,
                 "name_length": 110, "name": 112}


@pytest.mark.parametrize("field", sorted(HEADER_FIELDS))
def test_every_header_field_is_protected(make_vault: Callable[..., vault.Vault],
                                         field: str) -> None:
    """Changing any header field makes get fail with a vault error (never returns a value)."""
    v = make_vault()
    v.put("company", CRED)
    path = entry_file(v, "company")
    data = bytearray(path.read_bytes())
    offset = HEADER_FIELDS[field]
    data[offset + (7 if field in ("created_at", "expires_at") else 0)] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises((DecryptionError, FormatError, UnknownKeyError, EntryExpiredError)):
        v.get("company")


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_bytes(make_vault: Callable[..., vault.Vault], where: str) -> None:
    """Flipping the first, a middle or the last byte fails."""
    v = make_vault()
    v.put("x", CRED)
    path = entry_file(v, "x")
    data = bytearray(path.read_bytes())
    index = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    data[index] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises((DecryptionError, FormatError)):
        v.get("x")


def test_truncated_and_extended(make_vault: Callable[..., vault.Vault]) -> None:
    """A truncated or extended file is a FormatError."""
    v = make_vault()
    v.put("x", CRED)
    path = entry_file(v, "x")
    good = path.read_bytes()
    for bad in (good[:-1], good[:50], good + b"\0", b""):
        path.write_bytes(bad)
        with pytest.raises(FormatError):
            v.get("x")


def test_swapped_entries(make_vault: Callable[..., vault.Vault]) -> None:
    """Two entries' files swapped: neither opens under the other's name."""
    v = make_vault()
    v.put("alice", "A")
    v.put("bob", "B")
    a, b = entry_file(v, "alice"), entry_file(v, "bob")
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    for name in ("alice", "bob"):
        with pytest.raises(DecryptionError):
            v.get(name)
    problems = dict(v.scan().problems)
    assert set(problems) == {a, b} and all("moved or renamed" in p for p in problems.values())


def test_renamed_entry(make_vault: Callable[..., vault.Vault]) -> None:
    """A file renamed to another entry's file name does not open as that entry."""
    v = make_vault()
    v.put("alice", "A")
    os.rename(entry_file(v, "alice"), entry_file(v, "mallory"))
    with pytest.raises(DecryptionError):
        v.get("mallory")
    with pytest.raises(EntryNotFoundError):
        v.get("alice")


def test_redated_entry(make_vault: Callable[..., vault.Vault]) -> None:
    """Rewriting created_at/expires_at to extend validity fails authentication."""
    v = make_vault(ttl=60)
    entries_of(v).put("x", 1, T0)
    path = entry_file(v, "x")
    data = bytearray(path.read_bytes())
    data[90:98] = (T0 + 10_000_000).to_bytes(8, "big")
    data[98:106] = (T0 + 10_060_000).to_bytes(8, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        entries_of(v).load("x", T0 + 10_000_000)


def test_wrong_key_and_unknown_key(make_vault: Callable[..., vault.Vault]) -> None:
    """A vault whose ring lacks the entry's key id names that id."""
    v = make_vault()
    v.put("x", 1)
    other = vault.Vault(v.directory, keys=vault.KeyRing([vault.Key.generate()]))
    with pytest.raises(UnknownKeyError) as info:
        other.get("x")
    assert v.keys.primary.id in str(info.value)


def test_not_a_vault_file(make_vault: Callable[..., vault.Vault]) -> None:
    """A foreign file at an entry's path is a FormatError."""
    v = make_vault()
    v.put("x", 1)
    entry_file(v, "x").write_bytes(b'{"plaintext": "oops"}')
    with pytest.raises(FormatError, match="not a vault file"):
        v.get("x")


# ---- permissions and symlinks ----------------------------------------------------------

def test_symlinked_entry_is_refused(make_vault: Callable[..., vault.Vault],
                                    tmp_path: Path) -> None:
    """An entry file that is a symlink is refused, even if it points at a valid entry."""
    v = make_vault()
    v.put("x", 1)
    path = entry_file(v, "x")
    real = tmp_path / "elsewhere.cve"
    os.rename(path, real)
    os.symlink(real, path)
    with pytest.raises(InsecureFileError, match="symlink") as info:
        v.get("x")
    assert info.value.hint


def test_hard_linked_entry_is_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """An entry with a second hard link is refused."""
    v = make_vault()
    v.put("x", 1)
    os.link(entry_file(v, "x"), v.directory / "copy")
    with pytest.raises(InsecureFileError, match="hard links"):
        v.get("x")


def test_group_readable_file_is_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """An entry file readable by group or others is refused with a chmod hint."""
    v = make_vault()
    v.put("x", 1)
    os.chmod(entry_file(v, "x"), 0o640)
    with pytest.raises(InsecureFileError) as info:
        v.get("x")
    assert "chmod 600" in (info.value.hint or "")


def test_group_writable_directory_is_refused(make_vault: Callable[..., vault.Vault],
                                             ring: vault.KeyRing) -> None:
    """A vault directory with group/world access is refused at open and on each operation."""
    v = make_vault()
    v.put("x", 1)
    os.chmod(v.directory, 0o770)  # noqa: S103 - the attack under test
    with pytest.raises(InsecureFileError) as info:
        vault.Vault(v.directory, keys=ring)
    assert "chmod 700" in (info.value.hint or "")
    with pytest.raises(InsecureFileError):
        v.get("x")
    with pytest.raises(InsecureFileError):
        v.put("y", 1)


def test_symlinked_directory_is_refused(tmp_path: Path, ring: vault.KeyRing) -> None:
    """The vault directory itself may not be a symlink."""
    real = tmp_path / "real"
    vault.Vault(real, keys=ring)
    os.symlink(real, tmp_path / "link")
    with pytest.raises(InsecureFileError, match="symlink"):
        vault.Vault(tmp_path / "link", keys=ring)


def test_foreign_owner_is_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """A file owned by another user is refused (needs root to set up)."""
    if os.geteuid() != 0:
        require("root", "changing a file's owner needs root (run the suite as root)")
    v = make_vault()
    v.put("x", 1)
    os.chown(entry_file(v, "x"), 12345, 12345)
    with pytest.raises(InsecureFileError,
                       match=r"owned by #12345 \(uid 12345\).*sudo -u '#12345'"):
        v.get("x")


def test_symlinked_lock_file_is_refused(make_vault: Callable[..., vault.Vault],
                                        tmp_path: Path) -> None:
    """A lock file replaced by a symlink is refused rather than followed."""
    v = make_vault()
    target = tmp_path / "target"
    target.write_text("do not touch")
    os.symlink(target, v.directory / ".locks" / f"{name_stem('x')}.lock")
    with pytest.raises(InsecureFileError, match="symlink"):
        v.put("x", 1)
    assert target.read_text() == "do not touch"


def test_stale_temp_files_are_removed_at_open(make_vault: Callable[..., vault.Vault],
                                              ring: vault.KeyRing) -> None:
    """Temp files of crashed writes are removed when a vault opens; others are left alone."""
    v = make_vault()
    v.put("x", 1)
    stale = v.directory / f".{name_stem('x')}.0123456789abcdef.tmp"
    stale.write_bytes(b"partial")
    unrelated = v.directory / "notes.txt"
    unrelated.write_text("mine")
    vault.Vault(v.directory, keys=ring)
    assert not stale.exists() and unrelated.exists()
    assert v.get("x") == 1


def test_live_temp_file_is_kept(make_vault: Callable[..., vault.Vault],
                                ring: vault.KeyRing) -> None:
    """A temp file whose entry lock is held (a write in progress) is not removed."""
    v = make_vault()
    stem = name_stem("x")
    live = v.directory / f".{stem}.0123456789abcdef.tmp"
    live.write_bytes(b"in flight")
    with entries_of(v).lock("x"):
        vault.Vault(v.directory, keys=ring)
    assert live.exists()


# ---- quarantine -----------------------------------------------------------------------

def test_quarantine_moves_aside(make_vault: Callable[..., vault.Vault]) -> None:
    """quarantine() moves the file into quarantine/ with a timestamp and deletes nothing."""
    v = make_vault()
    v.put("x", 1)
    original = entry_file(v, "x").read_bytes()
    moved = v.quarantine("x")
    assert moved.parent == v.directory / "quarantine" and moved.read_bytes() == original
    assert moved.name.endswith(f"-{name_stem('x')}.cve") and moved.name[:8].isdigit()
    assert v.names() == []
    with pytest.raises(EntryNotFoundError):
        v.quarantine("x")


# ---- rotation ----------------------------------------------------------------------------

def test_rotate_rewraps_and_keeps_timestamps(make_vault: Callable[..., vault.Vault],
                                             ring: vault.KeyRing) -> None:
    """rotate() moves every entry to the new primary, keeping values and timestamps."""
    v = make_vault(ttl=3600)
    for i in range(5):
        entries_of(v).put(f"e{i}", {"i": i, "b": bytes([i])}, T0 + i)
    before = {n: v.info(n) for n in v.names()}
    new = vault.Key.generate()
    rotated = vault.Vault(v.directory, keys=ring.with_primary(new), ttl=3600)
    report = rotated.rewrap()
    assert (report.rewrapped, report.current, report.failed) == (5, 0, 0)
    assert report.by_key == {ring.primary.id: 5}
    for name, old in before.items():
        info = rotated.info(name)
        assert info.key_id == new.id
        assert (info.created_at, info.expires_at) == (old.created_at, old.expires_at)
        assert entries_of(rotated).load(name, T0 + 10)[1]["i"] == int(name[1:])
    again = rotated.rewrap()
    assert (again.rewrapped, again.current, again.failed) == (0, 5, 0)
    only_new = vault.Vault(v.directory, keys=vault.KeyRing([new]), ttl=3600)
    assert entries_of(only_new).load("e0", T0 + 10)[1]["i"] == 0


def test_rotate_reports_failures(make_vault: Callable[..., vault.Vault],
                                 ring: vault.KeyRing) -> None:
    """An entry that cannot be opened is counted as failed and named; others still rotate."""
    v = make_vault()
    v.put("good", 1)
    v.put("bad", 2)
    path = entry_file(v, "bad")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    report = vault.Vault(v.directory, keys=ring.with_primary(vault.Key.generate())).rewrap()
    assert (report.rewrapped, report.failed) == (1, 1)
    assert report.failures[0][0] == "bad" and "DecryptionError" in report.failures[0][1]
    assert path.read_bytes() == bytes(data)


def test_rotate_includes_expired_entries(make_vault: Callable[..., vault.Vault],
                                         ring: vault.KeyRing) -> None:
    """Expired entries are rewrapped too, keeping their (past) timestamps."""
    v = make_vault(ttl=1)
    entries_of(v).put("old", 1, 0)
    report = vault.Vault(v.directory, keys=ring.with_primary(vault.Key.generate())).rewrap()
    assert report.rewrapped == 1


def test_rotation_racing_writer_keeps_newer_values(make_vault: Callable[..., vault.Vault],
                                                   ring: vault.KeyRing) -> None:
    """A rotation racing a writer thread never replaces the writer's newer value."""
    v = make_vault(ttl=3600)
    names = [f"e{i}" for i in range(20)]
    for name in names:
        v.put(name, 0)
    last: dict[str, int] = {}
    stop = threading.Event()

    def writer() -> None:
        writer_vault = vault.Vault(v.directory, keys=ring, ttl=3600)
        counter = 0
        while not stop.is_set():
            counter += 1
            name = names[counter % len(names)]
            writer_vault.put(name, counter)
            last[name] = counter

    thread = threading.Thread(target=writer)
    thread.start()
    rotator = vault.Vault(v.directory, keys=ring.with_primary(vault.Key.generate()), ttl=3600)
    try:
        for _ in range(5):
            assert rotator.rewrap().failed == 0
    finally:
        stop.set()
        thread.join()
    rotator.rewrap()
    for name in names:
        assert rotator.get(name) == last.get(name, 0)


# ---- several processes ------------------------------------------------------------------

def child_env(ring: vault.KeyRing, **extra: str) -> dict[str, str]:
    """Environment for a child process: keys in CREDSEAL_KEYS, never in argv."""
    return {**os.environ, "CREDSEAL_KEYS": ring.to_text(), "PYTHONPATH": str(ROOT), **extra}


def test_writers_in_several_processes(make_vault: Callable[..., vault.Vault],
                                      ring: vault.KeyRing) -> None:
    """Three processes writing the same names leave every entry readable and complete."""
    v = make_vault(ttl=3600)
    procs = [subprocess.Popen([sys.executable, "-m", "tests.helpers.writer", str(v.directory),
                               "5", "30"], env=child_env(ring, WRITER_TAG=f"w{i}"),
                              stdout=subprocess.PIPE, text=True) for i in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(len(out.splitlines()) == 150 for out in outputs)
    for i in range(5):
        value = v.get(f"entry-{i}")
        assert value["counter"] == 30 and value["writer"] in {"w0", "w1", "w2"}
    assert not list(v.directory.glob(".*.tmp"))


@pytest.mark.slow
def test_sigkilled_writer_never_leaves_a_broken_entry(make_vault: Callable[..., vault.Vault],
                                                      ring: vault.KeyRing) -> None:
    """SIGKILL a writer at random moments 50 times: every entry opens to its old or new value."""
    v = make_vault(ttl=3600)
    rng = random.Random(1234)
    done: dict[str, int] = {}
    for _trial in range(50):
        proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.writer", str(v.directory),
                                 "4", "100000"], env=child_env(ring), stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it is writing now
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        reported: dict[str, int] = {}
        for line in (first + out).splitlines(keepends=True):
            if line.endswith("\n"):  # a line cut by the kill was not reported
                name, counter = line.split()
                reported[name] = int(counter)
        vault.Vault(v.directory, keys=ring)  # reopening removes the killed writer's temp file
        for name in v.names():
            counter = v.get(name)["counter"]
            # Each run restarts its counters at 1: the file holds the last reported write, or
            # the one in flight when the kill came, or (not reached this run) the older one.
            allowed = {reported.get(name), (reported.get(name) or 0) + 1}
            if name not in reported:
                allowed.add(done.get(name))
            assert counter in allowed, (name, counter, allowed)
            done[name] = counter
        assert not list(v.directory.glob(".*.tmp"))


def test_copy_of_vault_directory_still_opens(make_vault: Callable[..., vault.Vault],
                                             ring: vault.KeyRing, tmp_path: Path) -> None:
    """A backup copy of the directory (same names) opens with the same ring."""
    v = make_vault()
    v.put("x", CRED)
    copy = tmp_path / "copy"
    shutil.copytree(v.directory, copy)
    assert vault.Vault(copy, keys=ring).get("x") == CRED


def test_no_secret_in_errors_or_reprs(make_vault: Callable[..., vault.Vault],
                                      ring: vault.KeyRing) -> None:
    """Exceptions and reprs raised around a secret value never contain it or the key."""
    secret = "plaintext-credential-XYZZY"
    v = make_vault(max_entry_size=200)
    texts = [repr(v), repr(ring), repr(ring.primary)]
    for action in (lambda: v.put("big", secret * 20),
                   lambda: v.put("bad", {"field": [secret, {1}]}),
                   lambda: v.put("bad\n", secret)):
        with pytest.raises(vault.VaultError) as info:
            action()
        texts += [str(info.value), repr(info.value), str(info.value.hint)]
    v.put("x", secret)
    texts.append(repr(v.read("x")))
    material = ring.primary.to_text().split(":")[2]
    for text in texts:
        assert secret not in text and material not in text


def test_read_only_vault_changes_nothing_and_refuses_writes(tmp_path: Path,
                                                           ring: vault.KeyRing) -> None:
    """read_only=True needs an existing private directory, creates nothing, removes no stale
    temp file, reads and lists as usual, and refuses put, delete, quarantine and rewrap."""
    with pytest.raises(vault.InsecureFileError, match="does not exist"):
        vault.Vault(tmp_path / "missing", keys=ring, read_only=True)
    assert not (tmp_path / "missing").exists()
    vault.Vault(tmp_path / "v", keys=ring).put("a", {"x": 1})
    shutil.rmtree(tmp_path / "v" / ".locks")
    stale = tmp_path / "v" / f".{name_stem('a')}.{'0' * 16}.tmp"
    stale.write_bytes(b"stale")
    stale.chmod(0o600)
    before = sorted(p.name for p in (tmp_path / "v").iterdir())
    ro = vault.Vault(tmp_path / "v", keys=ring, read_only=True)
    assert ro.get("a") == {"x": 1} and ro.names() == ["a"] and "a" in ro and "b" not in ro
    for attempt in (lambda: ro.put("a", 2), lambda: ro.delete("a"),
                    lambda: ro.quarantine("a"), ro.rewrap):
        with pytest.raises(vault.InsecureFileError, match="read-only"):
            attempt()
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == before
    assert ro.get("a") == {"x": 1}


def test_ttl_has_an_upper_bound(tmp_path: Path, ring: vault.KeyRing) -> None:
    """A TTL past MAX_TTL (about a century) is a ConfigurationError naming the bound."""
    from vault._store.store import MAX_TTL

    vault.Vault(tmp_path / "v", keys=ring, ttl=MAX_TTL).put("a", 1)
    with pytest.raises(vault.ConfigurationError, match="at most"):
        vault.Vault(tmp_path / "v", keys=ring, ttl=MAX_TTL.total_seconds() + 1)
    with pytest.raises(vault.ConfigurationError):
        vault.Vault(tmp_path / "v", keys=ring, ttl=1e12)


def test_a_read_only_vault_keeps_its_journal_and_caches_away(tmp_path: Path,
                                                           ring: vault.KeyRing) -> None:
    """The journal of a read-only vault refuses appends and replay without creating anything,
    and a fallback cache, which must write, refuses a read-only vault outright."""
    from vault._store.journal import Journal
    from vault.testing import MemorySource

    vault.Vault(tmp_path / "v", keys=ring)
    ro = vault.Vault(tmp_path / "v", keys=ring, read_only=True)
    journal = Journal(ro)
    with pytest.raises(vault.InsecureFileError, match="read-only"):
        journal.append_save("a", 1)
    with pytest.raises(vault.InsecureFileError, match="read-only"):
        journal.replay(lambda record: None)
    assert not (tmp_path / "v" / "journal").exists() and journal.ids() == []
    with pytest.raises(vault.ConfigurationError, match="writable vault"):
        vault.FallbackCache(MemorySource(), ro)


def test_a_key_source_that_fails_leaves_no_directory(tmp_path: Path) -> None:
    """Vault(missing_dir, keys=<a source that cannot load>) raises and creates nothing."""
    from vault.keysources import PassphraseKeySource

    with pytest.raises(vault.KeySourceError, match="no keyfile"):
        vault.Vault(tmp_path / "typo", keys=PassphraseKeySource(tmp_path / "typo", "pw"))
    assert not (tmp_path / "typo").exists()


def test_a_far_future_header_is_a_scan_problem_not_a_crash(tmp_path: Path,
                                                          ring: vault.KeyRing) -> None:
    """A keyless file whose header dates past the year 9999 (legal: up to 2^63 ms) is listed
    as a problem; names, scan and rewrap go on (it used to raise ValueError everywhere)."""
    from vault._crypto import aead
    from vault._crypto import format as fmt

    v = vault.Vault(tmp_path / "v", keys=ring)
    v.put("good", 1)
    planted = aead.seal(b"\x01" * 32, b"\x02" * 8, kind=fmt.KIND_ENTRY, name="planted",
                        plaintext=b"{}", created_at=fmt.MAX_TIMESTAMP - 1,
                        expires_at=fmt.MAX_TIMESTAMP)
    path = v.directory / f"{name_stem('planted')}.cve"
    path.write_bytes(planted)
    path.chmod(0o600)
    assert v.names() == ["good"]
    (problem,) = v.scan().problems
    assert problem[0] == path and "beyond the year 9999" in problem[1]
    assert v.rewrap().failed == 0
    with pytest.raises(vault.FormatError, match="beyond the year 9999"):
        v.info("planted")


def test_entries_under_a_missing_key_reload_the_source_once_not_per_entry(
        tmp_path: Path) -> None:
    """Reading 300 entries sealed under a key the source lacks reloads the key source about
    once (per missing id and second), not once per entry: verify over 5,000 such entries on
    a keyring took 72 s when every entry made a D-Bus round trip."""
    lost, kept = vault.Key.generate(), vault.Key.generate()
    writer = vault.Vault(tmp_path / "v", keys=vault.KeyRing([lost]))
    for i in range(300):
        writer.put(f"e{i}", i)

    class Counting(vault.keysources.EnvKeySource):
        refreshes = 0

        def refresh(self, current: vault.KeyRing) -> vault.KeyRing | None:
            Counting.refreshes += 1
            return super().refresh(current)

    reader = vault.Vault(tmp_path / "v", keys=Counting(vault.KeyRing([kept]).to_text()))
    started = time.monotonic()
    for i in range(300):
        with pytest.raises(vault.UnknownKeyError):
            reader.read(f"e{i}")
    assert 1 <= Counting.refreshes <= 1 + (time.monotonic() - started) + 1
