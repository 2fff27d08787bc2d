"""Tests of vault.rotation: rotate, resume, lock, retire, with the real key sources."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

import vault
from tests.helpers.locks import held_rotation_lock
from tests.hygiene import CANARY_PASSPHRASE
from tests.realparts import SecretService
from vault._store.audit import AuditLog
from vault._store.entries import name_stem
from vault._store.journal import Journal
from vault._store.state import LOCK_FILE, RotationLock, StateFile
from vault._store.store import entries_of
from vault.config import current_context
from vault.errors import KeyInUseError, KeySourceError, RotationInProgressError
from vault.keysources import (
    ACTIVE,
    DECRYPT_ONLY,
    RETIRED,
    EnvKeySource,
    ManagedKeySource,
    OSKeyringSource,
    PassphraseKeySource,
)
from vault.ops import retire, rotate

CONTEXT = current_context()

T0 = 1_700_000_000_000
Setup = Callable[[], tuple[ManagedKeySource, vault.Vault]]


@pytest.fixture
def passphrase_setup(tmp_path: Path) -> Setup:
    """A vault on a passphrase keyfile (cheap KDF) holding three entries."""
    def make() -> tuple[ManagedKeySource, vault.Vault]:
        directory = tmp_path / "vault"
        source = PassphraseKeySource(directory, CANARY_PASSPHRASE, profile="test")
        directory.mkdir(mode=0o700, exist_ok=True)
        source.create(vault.Key.generate())
        v = vault.Vault(directory, keys=source, ttl=3600)
        for i in range(3):
            entries_of(v).put(f"e{i}", {"i": i, "b": bytes([i]) * 8}, T0 + i)
        return source, v
    return make


@pytest.fixture
def keyring_setup(tmp_path: Path, use_secret_service: SecretService) -> Setup:
    """A vault on the real Secret Service (a private D-Bus bus) holding three entries."""
    def make() -> tuple[ManagedKeySource, vault.Vault]:
        source = OSKeyringSource(f"credseal-test-{os.getpid()}-{tmp_path.name}")
        source.create(vault.Key.generate())
        v = vault.Vault(tmp_path / "vault", keys=source, ttl=3600)
        for i in range(3):
            entries_of(v).put(f"e{i}", {"i": i, "b": bytes([i]) * 8}, T0 + i)
        return source, v
    return make


@pytest.fixture(params=["passphrase", "keyring"])
def managed(request: pytest.FixtureRequest) -> Iterator[tuple[ManagedKeySource, vault.Vault]]:
    """Each managed key source in turn, with a vault of three entries."""
    yield request.getfixturevalue(f"{request.param}_setup")()


def test_rotate_adds_promotes_and_rewraps(managed: tuple[ManagedKeySource, vault.Vault]) -> None:
    """One rotate: a new active key, the old one decrypt-only, every entry rewrapped with its
    timestamps, an audit record."""
    source, v = managed
    old = source.load().primary.id
    before = {n: v.info(n) for n in v.names()}
    result = rotate(v, source)
    assert result.outcome == "rotated" and result.old_key_id == old
    states = {s.id: s.state for s in source.states()}
    assert states == {result.new_key_id: ACTIVE, old: DECRYPT_ONLY}
    for name, info in before.items():
        after = v.info(name)
        assert after.key_id == result.new_key_id
        assert (after.created_at, after.expires_at) == (info.created_at, info.expires_at)
        assert entries_of(v).load(name, T0 + 10)[1]["i"] == int(name[1:])
    record = list(AuditLog(v.directory, CONTEXT).records())[-1]
    assert record["action"] == "rotate" and record["rewrapped"] == 3
    assert record["new_key_id"] == result.new_key_id and record["outcome"] == "rotated"
    assert not json.dumps(record).count(CANARY_PASSPHRASE)


def test_running_service_follows_a_rotation(managed: tuple[ManagedKeySource, vault.Vault],
                                            tmp_path: Path) -> None:
    """A second process-like vault object with its own source object reads entries sealed
    under the new key (it reloads the ring on meeting an unknown id)."""
    source, v = managed
    if isinstance(source, PassphraseKeySource):
        other_source: ManagedKeySource = PassphraseKeySource(v.directory, CANARY_PASSPHRASE,
                                                             profile="test")
    else:
        assert isinstance(source, OSKeyringSource)
        other_source = OSKeyringSource(source.service)
    service = vault.Vault(v.directory, keys=other_source, ttl=3600)
    assert entries_of(service).load("e0", T0 + 10)[1]["i"] == 0
    rotate(v, source)
    entries_of(v).put("new", "sealed under the new key", T0 + 20)
    assert entries_of(service).load("new", T0 + 30)[1] == "sealed under the new key"


def test_retire_refuses_then_succeeds(managed: tuple[ManagedKeySource, vault.Vault]) -> None:
    """retire refuses while entries use the key (saying how many); after a rotation it works
    and the key opens nothing any more."""
    source, v = managed
    old = source.load().primary.id
    other = vault.Key.generate()
    source.add(other)
    source.promote(other.id)
    with pytest.raises(KeyInUseError, match=f"key {old} still seals 3 entries") as info:
        retire(v, source, old)
    assert "rewrap" in (info.value.hint or "")
    rotate(v, source, rewrap_only=True)
    retire(v, source, old)
    assert {s.id: s.state for s in source.states()}[old] == RETIRED
    assert old not in source.load()
    assert list(AuditLog(v.directory, CONTEXT).records())[-1]["action"] == "retire"


def test_retire_counts_journal_records(passphrase_setup: Setup) -> None:
    """A journal record still sealed under the key blocks retirement too."""
    source, v = passphrase_setup()
    old = source.load().primary.id
    journal = Journal(v)
    journal.append_save("pending", {"x": 1})
    new = vault.Key.generate()
    source.add(new)
    source.promote(new.id)
    v.rewrap()  # entries only: the journal is another rewrap target
    with pytest.raises(KeyInUseError, match="1 journal records"):
        retire(v, source, old)
    result = rotate(v, source, rewrap_only=True)
    assert result.journal.rewrapped == 1
    retire(v, source, old)


def test_journal_records_are_rewrapped(passphrase_setup: Setup) -> None:
    """Pending journal records move to the new key with the entries."""
    source, v = passphrase_setup()
    journal = Journal(v)
    journal.append_save("pending", {"x": 1})
    result = rotate(v, source)
    assert result.journal.rewrapped == 1
    assert dict(journal.key_ids()) == {result.new_key_id: 1}


def test_second_rotation_is_refused_naming_the_holder(passphrase_setup: Setup) -> None:
    """While another process holds the rotation lock, rotate raises naming pid and host."""
    source, v = passphrase_setup()
    with held_rotation_lock(v.directory) as pid, \
            pytest.raises(RotationInProgressError, match=f"pid {pid} on host"):
        rotate(v, source)
    assert rotate(v, source).outcome == "rotated"


def test_lock_left_by_a_dead_process_is_taken_over(passphrase_setup: Setup) -> None:
    """A lock file left by a killed rotation is taken over; its JSON is advisory (it resumes
    nothing); a finished run leaves nothing to resume in the sealed state."""
    source, v = passphrase_setup()
    (v.directory / LOCK_FILE).write_text(json.dumps({"pid": 999999, "host": "old-host",
                                                     "since": "2026-01-01T00:00:00+00:00"}))
    (v.directory / LOCK_FILE).chmod(0o600)
    result = rotate(v, source)
    assert result.outcome == "rotated" and result.resumed is None
    state = StateFile(entries_of(v)).read()
    assert state is not None and state.rotation is None


def test_killed_rotation_resumes_with_its_new_key(passphrase_setup: Setup) -> None:
    """A run killed after adding its new key is finished with that key, not another one."""
    source, v = passphrase_setup()
    added = vault.Key.generate()
    source.add(added)  # what the killed run managed to do, and recorded in the sealed state
    StateFile(entries_of(v)).update(lambda s: replace(s, rotation={"phase": "promoting",
                                                                   "new_key_id": added.id}))
    result = rotate(v, source)
    assert result.new_key_id == added.id and result.entries.rewrapped == 3
    assert result.resumed == {"phase": "promoting", "new_key_id": added.id}
    assert len(source.states()) == 2


def test_planted_rotation_lock_cannot_steer_rotation_back_to_an_old_key(
        passphrase_setup: Setup) -> None:
    """A planted rotation.lock naming the old, decrypt-only key used to be "resumed": exit 0
    with every entry rewrapped under the attacker's choice. The lock's JSON now steers
    nothing, and even a genuine sealed resume state moves only forward (or records --to)."""
    source, v = passphrase_setup()
    old = source.load().primary.id
    rotate(v, source)
    current = source.load().primary.id
    (v.directory / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "h", "since": "s",
                                                     "phase": "rewrapping",
                                                     "new_key_id": old}))
    (v.directory / LOCK_FILE).chmod(0o600)
    result = rotate(v, source)
    assert result.new_key_id not in (old, current) and result.resumed is None
    newest = result.new_key_id
    StateFile(entries_of(v)).update(lambda s: replace(s, rotation={"phase": "rewrapping",
                                                                   "new_key_id": old}))
    again = rotate(v, source)
    assert again.new_key_id not in (old, current, newest) and again.resumed is None
    assert source.load().primary.id == again.new_key_id
    assert {info.key_id for info in v.scan().entries} == {again.new_key_id}


def test_if_older_than(passphrase_setup: Setup) -> None:
    """--if-older-than rotates only a key older than the given age."""
    source, v = passphrase_setup()
    old = source.load().primary.id
    assert rotate(v, source, if_older_than=timedelta(days=1)).outcome == "not-due"
    assert source.load().primary.id == old
    assert rotate(v, source, if_older_than=timedelta(0)).outcome == "rotated"
    assert source.load().primary.id != old


def test_rotate_back_to_the_previous_key(managed: tuple[ManagedKeySource, vault.Vault]) -> None:
    """--to promotes the previous (decrypt-only) key again and rewraps everything to it."""
    source, v = managed
    old = source.load().primary.id
    forward = rotate(v, source)
    back = rotate(v, source, to_key_id=old)
    assert back.outcome == "rotated" and back.new_key_id == old and back.entries.rewrapped == 3
    assert {s.id: s.state for s in source.states()} == {old: ACTIVE,
                                                        forward.new_key_id: DECRYPT_ONLY}
    assert {v.info(n).key_id for n in v.names()} == {old}
    with pytest.raises(KeySourceError, match="not held"):
        rotate(v, source, to_key_id="0123456789abcdef")


def test_nothing_to_rewrap_is_current(passphrase_setup: Setup) -> None:
    """rewrap_only on a vault already under its primary reports "current"."""
    source, v = passphrase_setup()
    assert rotate(v, source, rewrap_only=True).outcome == "current"


def test_env_source_publishes_then_rewraps(tmp_path: Path) -> None:
    """With env keys, rotate returns the ring to deploy (new key first, old kept); rewrap_only
    with that ring finishes; a second publication waits for the first to be deployed."""
    old_ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(tmp_path / "vault", keys=EnvKeySource(old_ring.to_text()), ttl=3600)
    v.put("x", 1)
    published = rotate(v, EnvKeySource(old_ring.to_text()))
    assert published.outcome == "published" and published.new_ring is not None
    assert published.new_ring.ids == (published.new_key_id, old_ring.primary.id)
    assert v.info("x").key_id == old_ring.primary.id
    waiting = rotate(v, EnvKeySource(old_ring.to_text()), if_older_than=timedelta(0))
    assert waiting.outcome == "not-due" and waiting.new_key_id == published.new_key_id
    deployed = EnvKeySource(published.new_ring.to_text())
    done = rotate(vault.Vault(v.directory, keys=deployed, ttl=3600), deployed, rewrap_only=True)
    assert done.outcome == "rotated" and v.info("x").key_id == published.new_key_id


def test_env_source_cannot_be_changed(tmp_path: Path) -> None:
    """The env source refuses add/promote/retire with a hint to deploy CREDSEAL_KEYS."""
    ring = vault.KeyRing([vault.Key.generate()])
    with pytest.raises(KeySourceError):
        EnvKeySource(ring.to_text()).add(vault.Key.generate())


def test_env_retire_is_a_library_call_with_its_audit_record(tmp_path: Path) -> None:
    """ops.retire with the env source checks every target, returns the ring without the key to
    deploy, and audits "published"; the primary key is never retired."""
    old, new = vault.Key.generate(), vault.Key.generate()
    v = vault.Vault(tmp_path / "v", keys=vault.KeyRing([old]))
    v.put("a", 1)
    Journal(v).append_save("pending", 2)
    source = EnvKeySource(vault.KeyRing([new, old]).to_text())
    with pytest.raises(KeyInUseError, match=r"1 entries .* and 1 journal records"):
        retire(v, source, old.id)
    with pytest.raises(vault.KeySourceError, match="is the active key"):
        retire(v, source, new.id)
    rotate(vault.Vault(v.directory, keys=source), source, rewrap_only=True)
    result = retire(vault.Vault(v.directory, keys=source), source, old.id.upper())
    assert result.outcome == "published" and result.new_ring is not None
    assert result.new_ring.ids == (new.id,) and "new_ring" not in repr(result)
    last = list(AuditLog(v.directory, CONTEXT).records())[-1]
    assert (last["action"], last["outcome"], last["key_id"]) == ("retire", "published", old.id)


def test_extra_rewrap_targets_need_names_of_their_own(tmp_path: Path) -> None:
    """A further target named like a built-in one, or like an audit field that could carry a
    secret, is refused before anything is rewrapped."""
    from vault.ops import rewrap_targets

    v = vault.Vault(tmp_path / "v", keys=vault.KeyRing([vault.Key.generate()]))

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    for bad in ("entries", "journal", "keys", "Bad Name", ""):
        with pytest.raises(vault.ConfigurationError):
            rewrap_targets(v, [Named(bad)])  # type: ignore[list-item]
    assert [t.name for t in rewrap_targets(v, [Named("rows")])] == [  # type: ignore[list-item]
        "entries", "journal", "state", "rows"]


def test_a_failed_rotation_leaves_no_state_that_pins_its_key(passphrase_setup: Setup) -> None:
    """A rotation with an entry that cannot be rewrapped reports "failed" but clears its
    resume state: the next plain rotate makes a new key (it used to reuse the failed run's key
    forever), and --rewrap-only retries the failed item."""
    source, v = passphrase_setup()
    damaged = v.directory / f"{name_stem('e1')}.cve"
    good = damaged.read_bytes()
    damaged.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    first = rotate(v, source)
    assert first.outcome == "failed" and first.entries.failed == 1
    lock = RotationLock(v.directory, CONTEXT)
    assert lock.acquire() is None  # nothing left to resume
    lock.release(finished=False)
    damaged.write_bytes(good)  # restored from a backup: still under the old key
    retry = rotate(v, source, rewrap_only=True)
    assert retry.outcome == "rotated" and retry.new_key_id == first.new_key_id
    assert retry.resumed is None
    second = rotate(v, source)
    assert second.new_key_id not in (first.old_key_id, first.new_key_id)
    assert second.resumed is None and second.outcome == "rotated"


def test_forged_headers_claiming_the_old_key_do_not_block_retire(
        passphrase_setup: Setup) -> None:
    """Keyless files whose headers claim the old key id (an entry and a journal record) used
    to block retiring it forever; they fail to open under it, so they are quarantined and the
    retirement goes on. Real items under the key still block it."""
    from vault._crypto import aead
    from vault._crypto import format as fmt

    source, v = passphrase_setup()
    old = source.load().primary.id
    rotate(v, source)
    forged_entry = aead.seal(b"\x07" * 32, bytes.fromhex(old), kind=fmt.KIND_ENTRY,
                             name="forged", plaintext=b"{}", created_at=T0, expires_at=T0 + 1)
    (v.directory / f"{name_stem('forged')}.cve").write_bytes(forged_entry)
    (v.directory / f"{name_stem('forged')}.cve").chmod(0o600)
    rid = f"{T0 * 10**6:020d}-1-0000beef"
    (v.directory / "journal").mkdir(mode=0o700, exist_ok=True)
    forged_record = aead.seal(b"\x07" * 32, bytes.fromhex(old), kind=fmt.KIND_JOURNAL,
                              name=rid, plaintext=b"{}", created_at=T0, expires_at=T0)
    (v.directory / "journal" / f"{rid}.cvj").write_bytes(forged_record)
    (v.directory / "journal" / f"{rid}.cvj").chmod(0o600)
    assert {i.name: i.key_id for i in v.scan().entries}["forged"] == old  # unverified
    retire(v, source, old)
    assert {s.id: s.state for s in source.states()}[old] == RETIRED
    assert sorted(p.suffix for p in (v.directory / "quarantine").iterdir()) == [".cve", ".cvj"]
    assert "forged" not in v.names() and Journal(v).ids() == []


def test_a_forged_audit_line_no_longer_decides_rotation(tmp_path: Path) -> None:
    """With the env source, `rotate --if-older-than` took key ages and pending publications
    from audit.jsonl, plain JSON: one appended line stopped a daily timer forever. Ages and
    publications now come from the sealed vault state only."""
    from datetime import timedelta

    key = vault.Key.generate()
    v = vault.Vault(tmp_path / "v", keys=vault.KeyRing([key]))
    v.put("a", 1)
    source = EnvKeySource(key.to_text())
    forged = [{"time": "2999-01-01T00:00:00+00:00", "action": "rotate", "outcome": "published",
               "new_key_id": "0" * 16},
              {"time": "2999-01-01T00:00:00+00:00", "action": "init", "new_key_id": key.id}]
    (v.directory / "audit.jsonl").write_text("".join(json.dumps(r) + "\n" for r in forged))
    (v.directory / "audit.jsonl").chmod(0o600)
    due = rotate(v, source, if_older_than=timedelta(days=90))
    assert due.outcome == "published" and due.new_key_id != "0" * 16  # age unknown: due
    waiting = rotate(v, source, if_older_than=timedelta(days=90))
    assert waiting.outcome == "not-due" and waiting.new_key_id == due.new_key_id
    assert due.new_ring is not None
    deployed = EnvKeySource(due.new_ring.to_text())
    assert rotate(vault.Vault(v.directory, keys=deployed), deployed,
                  rewrap_only=True).outcome == "rotated"
    young = rotate(vault.Vault(v.directory, keys=deployed), deployed,
                   if_older_than=timedelta(days=90))
    assert young.outcome == "not-due" and young.new_key_id == due.new_key_id


def test_if_older_than_applies_to_resumes(passphrase_setup: Setup) -> None:
    """An unfinished rotation that had not promoted its key yet is not resumed by
    `rotate --if-older-than` while the primary is young; once promoted, finishing it is
    always allowed."""
    from datetime import timedelta

    source, v = passphrase_setup()
    primary = source.load().primary.id
    added = vault.Key.generate()
    source.add(added)
    StateFile(entries_of(v)).update(lambda s: replace(s, rotation={"phase": "promoting",
                                                                   "new_key_id": added.id}))
    young = rotate(v, source, if_older_than=timedelta(days=90))
    assert young.outcome == "not-due" and source.load().primary.id == primary
    source.promote(added.id)
    StateFile(entries_of(v)).update(lambda s: replace(s, rotation={"phase": "rewrapping",
                                                                   "new_key_id": added.id}))
    finished = rotate(v, source, if_older_than=timedelta(days=90))
    assert finished.new_key_id == added.id and finished.entries.rewrapped == 3

