"""Tests of vault.journal: the encrypted, ordered, durable journal of pending writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from tests.hygiene import CANARY_VALUE
from vault import _clock
from vault import _files as files
from vault._crypto import format as fmt
from vault._store.journal import MAX_RECORD_WAIT_MS, Journal, Record
from vault._store.state import StateFile
from vault._store.store import entries_of
from vault.errors import DecryptionError, LockTimeoutError
from vault.keysources import PassphraseKeySource

ROOT = Path(__file__).resolve().parents[2]
VALUE = {"secret": CANARY_VALUE, "key": b"\x00\x01\xff"}


@pytest.fixture
def journal(make_vault: Callable[..., vault.Vault]) -> Journal:
    """The journal of a fresh vault."""
    return Journal(make_vault())


def record_files(journal: Journal) -> list[Path]:
    """The record files of ``journal``, in id order."""
    return [journal.directory / f"{rid}.cvj" for rid in journal.ids()]


def test_empty_journal_has_no_directory(journal: Journal) -> None:
    """A journal that was never written has no records and no directory."""
    assert journal.ids() == [] and not journal.has_pending() and len(journal) == 0
    assert not journal.directory.exists()


def test_append_and_read_round_trip(journal: Journal) -> None:
    """A save and a delete read back with op, name, value (bytes kept) and time."""
    before = time.time()
    save_id = journal.append_save("company-1", VALUE)
    delete_id = journal.append_delete("company-2")
    assert journal.ids() == [save_id, delete_id] and journal.has_pending()
    save, delete = journal.read(save_id), journal.read(delete_id)
    assert (save.op, save.name, save.value) == ("save", "company-1", VALUE)
    assert (delete.op, delete.name, delete.value) == ("delete", "company-2", None)
    assert before - 1 <= save.at.timestamp() <= time.time() + 1
    assert CANARY_VALUE not in repr(save)


def test_records_are_private_encrypted_journal_envelopes(journal: Journal) -> None:
    """Records are 0600 KIND_JOURNAL envelopes in a 0700 directory; the value is not visible."""
    rid = journal.append_save("company-1", VALUE)
    path = journal.directory / f"{rid}.cvj"
    assert stat.S_IMODE(journal.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    header, _, _ = fmt.parse(data)
    assert header.kind == fmt.KIND_JOURNAL and header.name == rid
    assert header.expires_at == fmt.MAX_TIMESTAMP
    assert CANARY_VALUE.encode() not in data and b"company-1" not in data


def test_ids_follow_append_order_even_if_the_clock_steps_back(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequence numbers stay increasing when the wall clock goes backwards."""
    first = journal.append_save("a", 1)
    real = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: real - 3_600_000_000_000)
    second = journal.append_save("a", 2)
    third = journal.append_delete("a")
    assert journal.ids() == [first, second, third] == sorted([third, first, second])
    assert [r.value for r in journal.records()] == [1, 2, None]


def test_renamed_record_fails_to_open(journal: Journal) -> None:
    """Swapping two records' file names (reordering them) is detected."""
    journal.append_save("a", 1)
    journal.append_save("a", 2)
    first, second = record_files(journal)
    temp = first.with_name("swap")
    first.rename(temp)
    second.rename(first)
    temp.rename(second)
    with pytest.raises(DecryptionError):
        journal.read(journal.ids()[0])


def test_replay_applies_in_order_and_deletes_each_record(journal: Journal) -> None:
    """Records are applied oldest first, each deleted once applied; the journal ends empty."""
    for n in range(5):
        journal.append_save(f"n{n % 2}", n)
    journal.append_delete("n0")
    applied: list[tuple[str, str, object]] = []

    def apply(record: Record) -> bool:
        applied.append((record.op, record.name, record.value))
        assert len(journal) == 6 - len(applied) + 1  # this record is still there
        return True

    assert journal.replay(apply) == 6
    assert applied == [("save", "n0", 0), ("save", "n1", 1), ("save", "n0", 2),
                       ("save", "n1", 3), ("save", "n0", 4), ("delete", "n0", None)]
    assert journal.ids() == [] and not list((journal.directory / ".locks").glob("0*.lock"))


def test_failed_apply_keeps_that_record_and_the_later_ones(journal: Journal) -> None:
    """When apply raises, the record and everything after it stay for the next replay."""
    ids = [journal.append_save("a", n) for n in range(4)]

    def apply(record: Record) -> bool:
        if record.value == 2:
            raise ConnectionRefusedError("down again")
        return True

    with pytest.raises(ConnectionRefusedError):
        journal.replay(apply)
    assert journal.ids() == ids[2:]
    seen: list[object] = []
    assert journal.replay(lambda r: seen.append(r.value) or True) == 2 and seen == [2, 3]


def test_corrupt_record_is_quarantined_and_skipped(journal: Journal) -> None:
    """A tampered record is moved to quarantine/ and the replay goes on."""
    ids = [journal.append_save("a", n) for n in range(3)]
    path = journal.directory / f"{ids[1]}.cvj"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    quarantined: list[tuple[str, str]] = []
    seen: list[object] = []
    count = journal.replay(lambda r: seen.append(r.value) or True,
                           on_quarantine=lambda rid, exc, p: quarantined.append(
                               (rid, type(exc).__name__)))
    assert count == 2 and seen == [0, 2] and quarantined == [(ids[1], "DecryptionError")]
    assert list((journal.directory.parent / "quarantine").glob(f"*-{ids[1]}.cvj"))


def test_record_under_a_key_never_held_is_quarantined_not_followed(tmp_path: Path) -> None:
    """A record sealed under a key id this vault never held (to this ring it is a made-up
    header) is quarantined as unreadable; the replay goes on with the others."""
    old, new = vault.Key.generate(), vault.Key.generate()
    journal = Journal(vault.Vault(tmp_path / "v", keys=vault.KeyRing([new])))
    planted = Journal(vault.Vault(tmp_path / "other", keys=vault.KeyRing([old])))
    rid = planted.append_save("a", 1)
    (tmp_path / "v" / "journal").mkdir(mode=0o700, exist_ok=True)
    target = tmp_path / "v" / "journal" / f"{rid}.cvj"
    target.write_bytes((tmp_path / "other" / "journal" / f"{rid}.cvj").read_bytes())
    target.chmod(0o600)
    journal.append_save("a", 2)
    seen: list[object] = []
    quarantined: list[str] = []
    assert journal.replay(lambda r: seen.append(r.value) or True,
                          on_quarantine=lambda rid, exc, p: quarantined.append(
                              type(exc).__name__)) == 1
    assert seen == [2] and quarantined == ["UnknownKeyError"] and len(journal) == 0


def test_record_under_a_retired_key_is_quarantined_and_blocks_nothing(tmp_path: Path) -> None:
    """A record under a key the source records as retired (here put back from a backup) can
    never open: it is quarantined with a hint saying so, and later records replay."""
    directory = tmp_path / "v"
    source = PassphraseKeySource(directory, "pw", profile="test")
    first = vault.Key.generate()
    source.create(first)
    v = vault.Vault(directory, keys=source)
    old_rid = Journal(v).append_save("a", 1)
    backup = (directory / "journal" / f"{old_rid}.cvj").read_bytes()
    second = vault.Key.generate()
    source.add(second)
    source.promote(second.id)
    assert Journal(v).rewrap(source.load()).rewrapped == 1
    StateFile(entries_of(vault.Vault(directory, keys=source))).update(lambda s: s)  # resealed
    Journal(v).discard(old_rid)
    source.retire(first.id)
    (directory / "journal" / f"{old_rid}.cvj").write_bytes(backup)
    (directory / "journal" / f"{old_rid}.cvj").chmod(0o600)
    v = vault.Vault(directory, keys=PassphraseKeySource(directory, "pw"))
    journal = Journal(v)
    journal.append_save("b", 2)
    seen: list[object] = []
    waiting: list[str] = []
    hints: list[str | None] = []
    assert journal.replay(lambda r: seen.append(r.value) or True,
                          on_waiting=lambda rid, exc: waiting.append(exc.key_id),
                          on_quarantine=lambda rid, exc, p: hints.append(exc.hint)) == 1
    assert seen == [2] and waiting == [] and journal.ids() == []
    assert len(hints) == 1 and "retired" in str(hints[0])
    assert (directory / "quarantine").is_dir()


def test_record_waits_for_a_known_key_at_most_a_week(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record under a key this vault knows (dated in its state) but the ring here lacks (not
    deployed yet) waits, reported; after MAX_RECORD_WAIT_MS it is quarantined, with a hint
    on how to replay it, and no longer holds back the high-water mark."""
    k1, k2 = vault.Key.generate(), vault.Key.generate()
    directory = tmp_path / "v"
    StateFile(entries_of(vault.Vault(directory, keys=vault.KeyRing([k1])))).named(k2.id)
    rid = Journal(vault.Vault(directory, keys=vault.KeyRing([k2, k1]))).append_save("a", 1)
    journal = Journal(vault.Vault(directory, keys=vault.KeyRing([k1])))
    waiting: list[str] = []
    hints: list[str | None] = []
    assert journal.replay(lambda r: True, on_waiting=lambda r, exc: waiting.append(r)) == 0
    assert waiting == [rid] and journal.ids() == [rid]
    later = _clock.now_ms() + MAX_RECORD_WAIT_MS + 60_000
    monkeypatch.setattr("vault._clock.now_ms", lambda: later)
    assert journal.replay(lambda r: True,
                          on_quarantine=lambda r, exc, p: hints.append(exc.hint)) == 0
    assert journal.ids() == [] and "waited more than 7 days" in str(hints[0])


def test_records_never_expire(tmp_path: Path) -> None:
    """Records replay long after the vault's TTL."""
    journal = Journal(vault.Vault(tmp_path / "v", keys=vault.KeyRing([vault.Key.generate()]),
                                  ttl=0.01))
    journal.append_save("a", 1)
    time.sleep(0.05)
    seen: list[object] = []
    assert journal.replay(lambda r: seen.append(r.value) or True) == 1 and seen == [1]


def test_replay_lock_excludes_a_second_replayer(make_vault: Callable[..., vault.Vault]) -> None:
    """While one replayer holds the lock, another one waits and then gives up."""
    journal = Journal(make_vault(lock_timeout=0.2))
    journal.append_save("a", 1)
    with journal.replay_lock(), pytest.raises(LockTimeoutError):
        journal.replay(lambda r: True)
    assert len(journal) == 1


def test_records_appended_during_replay_are_replayed(journal: Journal) -> None:
    """A record appended while a replay runs is replayed by that replay, after the others."""
    journal.append_save("a", 1)
    seen: list[object] = []

    def apply(record: Record) -> bool:
        seen.append(record.value)
        if record.value == 1:
            journal.append_save("a", 2)
        return True

    assert journal.replay(apply) == 2 and seen == [1, 2]


def test_processes_append_concurrently_in_order(journal: Journal, ring: vault.KeyRing) -> None:
    """Two processes appending at once get unique ids; each one's records keep their order."""
    code = ("import os, sys, vault; from vault._store.journal import Journal; "
            "j = Journal(vault.Vault(sys.argv[1], keys=vault.KeyRing.from_text("
            "os.environ['CREDSEAL_KEYS']))); "
            "[j.append_save('p' + sys.argv[2], i) for i in range(40)]")
    env = {**os.environ, "CREDSEAL_KEYS": ring.to_text()}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(journal.directory.parent),
                               str(p)], env=env, cwd=ROOT) for p in range(2)]
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    records = list(journal.records())
    assert len({r.id for r in records}) == 80
    for p in range(2):
        assert [r.value for r in records if r.name == f"p{p}"] == list(range(40))


def test_rewrap_reseals_under_the_new_primary(tmp_path: Path) -> None:
    """rewrap moves records to the new primary, keeps ids and times; the old key can go."""
    old, new = vault.Key.generate(), vault.Key.generate()
    journal = Journal(vault.Vault(tmp_path / "v", keys=vault.KeyRing([old])))
    ids = [journal.append_save("a", n) for n in range(3)]
    before = {rid: journal.read(rid).at for rid in ids}
    assert journal.key_ids() == {old.id: 3}
    report = journal.rewrap(vault.KeyRing([new, old]))
    assert (report.rewrapped, report.current, report.failed) == (3, 0, 0)
    assert report.by_key == {old.id: 3}
    assert journal.key_ids() == {new.id: 3}
    only_new = Journal(vault.Vault(tmp_path / "v", keys=vault.KeyRing([new])))
    assert only_new.ids() == ids and {r.id: r.at for r in only_new.records()} == before
    again = only_new.rewrap()
    assert (again.rewrapped, again.current) == (0, 3)


def test_rewrap_reports_records_under_unknown_keys(tmp_path: Path) -> None:
    """A record whose key is not in the ring is reported as failed, not touched."""
    lost, new = vault.Key.generate(), vault.Key.generate()
    Journal(vault.Vault(tmp_path / "v", keys=vault.KeyRing([lost]))).append_save("a", 1)
    journal = Journal(vault.Vault(tmp_path / "v", keys=vault.KeyRing([new])))
    report = journal.rewrap()
    assert report.failed == 1 and "UnknownKeyError" in report.failures[0][1]
    assert journal.key_ids() == {lost.id: 1}


def test_stale_temp_files_are_removed_by_replay(journal: Journal) -> None:
    """A temp file left by a crashed append is removed at the end of a replay."""
    rid = journal.append_save("a", 1)
    temp = journal.directory / files.temp_name(rid.replace(rid[:20], "0" * 20))
    temp.write_bytes(b"partial")
    assert journal.ids() == [rid]
    journal.replay(lambda r: True)
    assert not temp.exists() and journal.ids() == []


def test_env_record_under_a_dated_key_waits_instead_of_being_quarantined(
        tmp_path: Path) -> None:
    """With the env source the ring is all it knows: a record under a key the vault's sealed
    state dated (published, then dropped from CREDSEAL_KEYS too early) waits for the key to
    come back instead of being quarantined as a made-up header."""
    from dataclasses import replace

    from vault._store.state import StateFile
    from vault._store.store import entries_of

    first, second = vault.Key.generate(), vault.Key.generate()
    directory = tmp_path / "v"
    old = vault.Vault(directory, keys=vault.KeyRing([first]))
    rid = Journal(old).append_save("a", 1)
    StateFile(entries_of(old)).update(lambda s: replace(s, keys={first.id: 1}))
    newer = vault.Vault(directory, keys=vault.KeyRing([second, first]))
    StateFile(entries_of(newer)).update(lambda s: s)  # resealed under the new primary
    journal = Journal(vault.Vault(directory, keys=vault.KeyRing([second])))
    waiting: list[str] = []
    assert journal.replay(lambda r: True, on_waiting=lambda i, exc: waiting.append(i)) == 0
    assert waiting == [rid] and journal.ids() == [rid]


def test_latest_skips_records_at_or_below_the_high_water_mark(tmp_path: Path) -> None:
    """A replanted copy of an applied record is not "the newest pending write" of its name:
    outage reads and the base of new writes ignore it."""
    v = vault.Vault(tmp_path / "v", keys=vault.KeyRing([vault.Key.generate()]))
    journal = Journal(v)
    rid = journal.append_delete("a")
    copy = (journal.directory / f"{rid}.cvj").read_bytes()
    assert journal.replay(lambda r: True) == 1
    (journal.directory / f"{rid}.cvj").write_bytes(copy)
    (journal.directory / f"{rid}.cvj").chmod(0o600)
    assert journal.latest("a") is None

