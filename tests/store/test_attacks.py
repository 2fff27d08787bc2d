"""Entry-level attacks by someone who can read and write the vault directory (docs/security.md).

Each test is one attack. Bit flips of every byte, truncation and permissions are covered in
test_store.py and test_aead.py; here the attacker makes well-formed, deliberate changes.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from vault._crypto import aead
from vault._crypto import format as fmt
from vault._store.entries import name_stem
from vault._store.store import entries_of
from vault.errors import (
    DecryptionError,
    EntryExpiredError,
    FormatError,
    InsecureFileError,
    LockTimeoutError,
    UnknownKeyError,
)

T0 = 1_700_000_000_000


def path_of(v: vault.Vault, name: str) -> Path:
    """The file of entry ``name``."""
    return v.directory / f"{name_stem(name)}.cve"


def rebuild(data: bytes, **changes: object) -> bytes:
    """Re-pack an envelope's header with some fields changed (lengths kept consistent)."""
    header, _, payload = fmt.parse(data)
    new = header._replace(**changes)
    return fmt.pack_header(new) + payload


def test_replay_of_older_file_is_accepted_only_within_its_ttl(
        make_vault: Callable[..., vault.Vault]) -> None:
    """Restoring an older copy of an entry works until that copy's TTL ends: the rollback
    window is the TTL."""
    v = make_vault(ttl=300)
    entries_of(v).put("x", "old password", T0)
    old_copy = path_of(v, "x").read_bytes()
    entries_of(v).put("x", "new password", T0 + 10_000)
    path_of(v, "x").write_bytes(old_copy)
    assert entries_of(v).load("x", T0 + 20_000)[1] == "old password"
    with pytest.raises(EntryExpiredError):
        entries_of(v).load("x", T0 + 300_001)


def test_file_copied_from_a_vault_with_another_ring(make_vault: Callable[..., vault.Vault]) -> None:
    """A same-named entry copied in from a vault under another ring is an unknown key."""
    ours = make_vault("ours")
    theirs = make_vault("theirs", keys=vault.KeyRing([vault.Key.generate()]))
    ours.put("x", "ours")
    theirs.put("x", "theirs")
    path_of(ours, "x").write_bytes(path_of(theirs, "x").read_bytes())
    with pytest.raises(UnknownKeyError, match=theirs.keys.primary.id):
        ours.get("x")


def test_vaults_sharing_a_key_accept_each_others_entries(
        make_vault: Callable[..., vault.Vault]) -> None:
    """Documented limitation: two vaults on the same ring accept each other's same-named
    entry, which is why every vault should have its own ring."""
    a, b = make_vault("a"), make_vault("b")
    a.put("x", "from a")
    b.put("x", "from b")
    path_of(a, "x").write_bytes(path_of(b, "x").read_bytes())
    assert a.get("x") == "from b"


@pytest.mark.parametrize("field, value", [
    ("kind", fmt.KIND_JOURNAL),
    ("salt", b"\x11" * fmt.SALT_SIZE),
    ("nonce", b"\x22" * fmt.NONCE_SIZE),
    ("commitment", b"\x33" * fmt.COMMITMENT_SIZE),
    ("created_at", T0 - 1),
    ("created_at", T0 + 1),
    ("expires_at", T0 + 10**9),
    ("name", "y"),
    ("name", "a-longer-name"),
])
def test_one_header_field_changed_to_a_plausible_value(
        make_vault: Callable[..., vault.Vault], field: str, value: object) -> None:
    """A well-formed header with one field changed fails to open, whatever the field."""
    v = make_vault(ttl=300)
    entries_of(v).put("x", "value", T0)
    forged = rebuild(path_of(v, "x").read_bytes(), **{field: value})
    target = str(value) if field == "name" else "x"
    path_of(v, target).write_bytes(forged)
    path_of(v, target).chmod(0o600)
    with pytest.raises(DecryptionError):
        entries_of(v).load(target, T0 + 1)


def test_header_naming_another_ring_key_is_caught_by_the_commitment(
        make_vault: Callable[..., vault.Vault], monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry sealed under key A but labelled with key B's id fails at the commitment check,
    before any decryption is attempted."""
    a, b = vault.Key.generate(), vault.Key.generate()
    v = make_vault(keys=vault.KeyRing([a, b]))
    v.put("x", "value")
    relabelled = rebuild(path_of(v, "x").read_bytes(), key_id=bytes.fromhex(b.id))
    path_of(v, "x").write_bytes(relabelled)
    decrypts: list[bytes] = []
    real = aead.AESGCM

    class Spy:
        """Records every decryption attempt (AESGCM itself cannot be subclassed)."""

        def __init__(self, key: bytes) -> None:
            self.inner = real(key)

        def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            decrypts.append(nonce)
            return self.inner.decrypt(nonce, data, aad)

    monkeypatch.setattr(aead, "AESGCM", Spy)
    with pytest.raises(DecryptionError):
        v.get("x")
    assert decrypts == []


def test_payload_length_rewritten_with_truncated_payload(
        make_vault: Callable[..., vault.Vault]) -> None:
    """Shortening the payload and fixing up PAYLOAD_LENGTH still fails authentication."""
    v = make_vault()
    v.put("x", "a value long enough to truncate")
    data = path_of(v, "x").read_bytes()
    header, header_bytes, payload = fmt.parse(data)
    shorter = bytearray(header_bytes)
    shorter[106:110] = struct.pack(">I", header.payload_length - 5)
    path_of(v, "x").write_bytes(bytes(shorter) + payload[5:])
    with pytest.raises(DecryptionError):
        v.get("x")


def test_symlink_to_another_valid_entry_is_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """A symlink planted at one entry's path, pointing at another entry, is refused."""
    v = make_vault()
    v.put("a", 1)
    v.put("b", 2)
    path_of(v, "a").unlink()
    os.symlink(path_of(v, "b"), path_of(v, "a"))
    with pytest.raises(InsecureFileError, match="symlink"):
        v.get("a")


def test_hard_link_to_another_entry_is_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """A hard link planted at one entry's path (to another entry's file) is refused."""
    v = make_vault()
    v.put("a", 1)
    v.put("b", 2)
    path_of(v, "a").unlink()
    os.link(path_of(v, "b"), path_of(v, "a"))
    with pytest.raises(InsecureFileError, match="hard links"):
        v.get("a")
    with pytest.raises(InsecureFileError, match="hard links"):
        v.get("b")


def test_directory_made_group_writable_after_open(make_vault: Callable[..., vault.Vault]) -> None:
    """Every operation of an open vault refuses a directory that became group-writable."""
    v = make_vault()
    v.put("x", 1)
    os.chmod(v.directory, 0o720)
    for operation in (lambda: v.get("x"), lambda: v.put("x", 2), lambda: v.names()):
        with pytest.raises(InsecureFileError, match="group or others"):
            operation()


def test_planted_temp_symlink_is_removed_without_touching_its_target(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing, tmp_path: Path) -> None:
    """A symlink named like a stale temp file is removed at open; its target is untouched."""
    v = make_vault()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    temp = v.directory / f".{name_stem('x')}.00000000000000aa.tmp"
    os.symlink(victim, temp)
    vault.Vault(v.directory, keys=ring)
    assert not os.path.lexists(temp) and victim.read_text() == "precious"


def test_planted_temp_directory_does_not_block_opening(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing) -> None:
    """A directory named like a temp file is left alone and the vault still opens and works."""
    v = make_vault()
    (v.directory / f".{name_stem('x')}.00000000000000bb.tmp").mkdir()
    again = vault.Vault(v.directory, keys=ring)
    again.put("x", 1)
    assert again.get("x") == 1


def test_lock_held_by_an_attacker_times_out_writes_but_not_reads(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing) -> None:
    """A process holding an entry's lock forever makes writers time out; readers still read."""
    v = make_vault()
    v.put("x", 1)
    fd = os.open(v.directory / ".locks" / f"{name_stem('x')}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        impatient = vault.Vault(v.directory, keys=ring, lock_timeout=0.1)
        with pytest.raises(LockTimeoutError, match="'x'"):
            impatient.put("x", 2)
        assert impatient.get("x") == 1
    finally:
        os.close(fd)
    impatient.put("x", 2)
    assert v.get("x") == 2


def test_stale_lock_file_left_behind_is_harmless(make_vault: Callable[..., vault.Vault]) -> None:
    """An unheld lock file (left by a crash or planted) does not stop writes."""
    v = make_vault()
    lock = v.directory / ".locks" / f"{name_stem('x')}.lock"
    lock.write_bytes(b"garbage")
    lock.chmod(0o600)
    v.put("x", 1)
    assert v.get("x") == 1


def test_lock_file_readable_by_others_is_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """A planted lock file with group/world access is refused rather than used."""
    v = make_vault()
    lock = v.directory / ".locks" / f"{name_stem('x')}.lock"
    lock.write_bytes(b"")
    lock.chmod(0o644)
    with pytest.raises(InsecureFileError):
        v.put("x", 1)


@pytest.mark.parametrize("position", [0, 4, 5, 110, 111])
def test_garbage_in_structural_fields_is_a_format_error(
        make_vault: Callable[..., vault.Vault], position: int) -> None:
    """Garbage in magic, version, kind or name length is rejected before any cryptography."""
    v = make_vault()
    v.put("x", 1)
    data = bytearray(path_of(v, "x").read_bytes())
    data[position] = 0xFF
    path_of(v, "x").write_bytes(bytes(data))
    with pytest.raises(FormatError):
        v.get("x")


def test_directory_or_socket_planted_at_an_entry_path_gives_vault_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory planted at an entry's path makes put, get and delete raise a VaultError
    (they used to let IsADirectoryError escape); a socket there is replaced by put like any
    non-file, and read as "not a regular file"; the cache only logs."""
    import socket

    from vault._store.entries import name_stem
    from vault.testing import MemorySource

    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(tmp_path / "v", keys=ring)
    (v.directory / f"{name_stem('d')}.cve").mkdir(mode=0o700)
    for attempt in (lambda: v.put("d", 1), lambda: v.get("d"), lambda: v.delete("d")):
        with pytest.raises(vault.InsecureFileError):
            attempt()
    cache = vault.FallbackCache(MemorySource({"d": 1}), v)
    assert cache.fetch("d").value == 1 and not cache.save("d", 2).journaled
    sock = socket.socket(socket.AF_UNIX)
    try:
        monkeypatch.chdir(v.directory)  # a socket path is limited to 108 bytes
        sock.bind(f"{name_stem('s')}.cve")
        with pytest.raises(vault.InsecureFileError, match="not a regular file"):
            v.get("s")
        v.put("s", 3)
        assert v.get("s") == 3
    finally:
        sock.close()
