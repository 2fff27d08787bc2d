"""Tests of vault.migrate: plaintext cache files and Baileys auth folders into a vault, and back.

The fixtures in tests/data/migrate were written by Node (generate.mjs there): every Buffer form,
a seed-style cache file with expired and malformed records, and a multi-file auth folder.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vault
from tests import hygiene
from vault import _files, codec
from vault._store.audit import AuditLog
from vault._store.store import entries_of
from vault.config import current_context
from vault.errors import FormatError, VaultError
from vault.integrations import baileys
from vault.integrations.baileys import (
    EXISTS,
    FAILED,
    IMPORTED,
    MISMATCH,
    PRESENT,
    MigrationError,
    _export,
    _migrate,
)

DATA = Path(__file__).parent.parent / "data" / "migrate"
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)  # the fixtures' "now" (generate.mjs)
NOW_MS = 1_748_779_200_000
HOUR = timedelta(hours=1)
TTL = timedelta(days=1)
CANARY_KEY = hashlib.sha512(b"credvault migrate canary key").digest()[:32]  # noiseKey.private
hygiene.secret(CANARY_KEY, "migration fixture key bytes")
FORMS = ("2001", "2002", "2003", "2004")  # base64, int array, Uint8Array object, legacy
AUTH_STEMS = sorted(p.name[:-5] for p in (DATA / "auth").iterdir())


def tagged(value: Any) -> bytes:
    """The vault's own serialization: equal bytes mean equal values with equal types."""
    return codec.dumps(value)


def at_now(v: vault.Vault, name: str) -> Any:
    """Entry ``name`` read (authenticated, TTL checked) at the fixtures' NOW."""
    return entries_of(v).load(name, NOW_MS)[1]


def leak_free(*objects: object) -> None:
    """Hand reprs to the hygiene scan and check them for the canaries right away."""
    for obj in objects:
        text = repr(obj)
        hygiene.record(text, f"repr({type(obj).__name__})")
        assert hygiene.CANARY_VALUE not in text
        assert base64.b64encode(CANARY_KEY).decode() not in text


@pytest.fixture
def vlt(make_vault: Callable[..., vault.Vault]) -> vault.Vault:
    """A vault with a one-day TTL."""
    return make_vault(ttl=TTL)


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[str], Path]:
    """Return a factory of copies of a fixture (file or folder), all dated NOW - 1 h."""
    def copy(name: str) -> Path:
        target = tmp_path / "src" / name
        target.parent.mkdir(exist_ok=True)
        if (DATA / name).is_dir():
            shutil.copytree(DATA / name, target)
        else:
            shutil.copyfile(DATA / name, target)
        stamp = (NOW_MS - 3_600_000) * 1_000_000
        for path in [target, *target.iterdir()] if target.is_dir() else [target]:
            os.utime(path, ns=(stamp, stamp))
        return target
    return copy


def record_value(raw: bytes, company: str) -> Any:
    """A company record of a cache file, revived by the codec alone, without its timestamp."""
    text = json.dumps(json.loads(raw)[company], ensure_ascii=False, separators=(",", ":"))
    value = codec.loads(text, "node")
    assert isinstance(value, dict)
    return {k: v for k, v in value.items() if k != "timestamp"}


# ---- cache file -----------------------------------------------------------------------------

def test_dry_run_lists_and_changes_nothing(vlt: vault.Vault,
                                           copy_of: Callable[[str], Path]) -> None:
    """A plan lists names, sizes, times and skips with reasons, and writes nothing anywhere."""
    seed = copy_of("cache-seed.json")
    before = seed.read_bytes()
    plan = baileys.plan_cache_file(seed, vlt, now=NOW)
    assert [e.name for e in plan.entries] == [f"company/{c}" for c in FORMS]
    assert {s.source: s.kind for s in plan.skipped} == {
        "2005": "expired", **{str(c): "malformed" for c in range(2006, 2013)}}
    for entry in plan.entries:
        assert entry.created_at == NOW - HOUR and entry.expires_at == NOW - HOUR + TTL
        assert entry.size == len(tagged(record_value(before, entry.source)))
        assert not entry.exists and entry.redated_from is None
    assert vlt.names() == [] and seed.read_bytes() == before
    assert sorted(p.name for p in seed.parent.iterdir()) == ["cache-seed.json"]
    leak_free(plan)


def test_apply_imports_baileys7_file_exactly(vlt: vault.Vault,
                                             copy_of: Callable[[str], Path]) -> None:
    """Each company opens to codec.loads(original, "node") minus timestamp, types and times kept."""
    path = copy_of("cache-baileys7.json")
    original = codec.loads(path.read_bytes(), "node")
    assert isinstance(original, dict)
    result = baileys.apply(baileys.plan_cache_file(path, vlt, now=NOW), vlt)
    assert result.verified and {o.status for o in result.outcomes} == {IMPORTED}
    assert vlt.names() == [f"company/{c}" for c in ("1001", "1002", "acme-eu")]
    for company, record in original.items():
        assert isinstance(record, dict)
        expected = {k: v for k, v in record.items() if k != "timestamp"}
        got = at_now(vlt, f"company/{company}")
        assert tagged(got) == tagged(expected) and list(got) == ["creds", "keys"]
        stamp = record["timestamp"]
        assert isinstance(stamp, int)
        info = vlt.info(f"company/{company}")
        assert info.created_at == _migrate._dt(stamp)
        assert info.expires_at == _migrate._dt(stamp) + TTL
    leak_free(result)


def test_every_buffer_form_imports_to_the_same_bytes(vlt: vault.Vault,
                                                     copy_of: Callable[[str], Path]) -> None:
    """Base64, int-array, Uint8Array-object and legacy Buffers all come back as equal bytes."""
    seed = copy_of("cache-seed.json")
    result = baileys.apply(baileys.plan_cache_file(seed, vlt, now=NOW), vlt)
    assert result.verified and len(result.outcomes) == 4
    values = [at_now(vlt, f"company/{c}") for c in FORMS]
    assert all(tagged(v) == tagged(values[0]) for v in values)
    assert tagged(values[0]) == tagged(record_value(seed.read_bytes(), "2001"))
    creds = values[0]["creds"]
    private = creds["noiseKey"]["private"]
    assert type(private) is bytes and private == CANARY_KEY
    assert creds["advSecretKey"] == hygiene.CANARY_VALUE  # base64-looking strings stay strings
    assert type(values[0]["keys"]["session"]["4915100000001.0"]) is bytes


def test_expired_records_are_skipped_and_reported(vlt: vault.Vault,
                                                  copy_of: Callable[[str], Path]) -> None:
    """A record older than the vault's TTL is skipped with a reason and not imported."""
    plan = baileys.plan_cache_file(copy_of("cache-seed.json"), vlt, now=NOW)
    (expired,) = [s for s in plan.skipped if s.kind == "expired"]
    assert expired.source == "2005" and "72.0 h" in expired.reason and "TTL" in expired.reason
    baileys.apply(plan, vlt)
    assert "company/2005" not in vlt.names()


def test_include_expired_redates_to_the_plan_time(vlt: vault.Vault,
                                                  copy_of: Callable[[str], Path]) -> None:
    """With include_expired an expired record is imported dated now, its own date reported."""
    plan = baileys.plan_cache_file(copy_of("cache-seed.json"), vlt, now=NOW,
                                   include_expired=True)
    (entry,) = [e for e in plan.entries if e.source == "2005"]
    assert entry.created_at == NOW and entry.redated_from == NOW - timedelta(days=3)
    assert all(e.redated_from is None for e in plan.entries if e is not entry)
    assert baileys.apply(plan, vlt).verified
    assert at_now(vlt, "company/2005")["creds"]["registrationId"] == 4711  # readable, not expired


def test_malformed_records_are_reported_with_reasons(vlt: vault.Vault,
                                                     copy_of: Callable[[str], Path]) -> None:
    """Every malformed record gets a precise reason that shows no value; nothing crashes."""
    plan = baileys.plan_cache_file(copy_of("cache-seed.json"), vlt, now=NOW)
    reasons = {s.source: s.reason for s in plan.skipped if s.kind == "malformed"}
    assert reasons == {
        "2006": "timestamp is a string, not an integer of ms since the epoch",
        "2007": "record has no keys",
        "2008": "dated in the future, beyond the vault's clock skew",
        "2009": "cannot decode: invalid base64 in a Buffer at $.creds.noiseKey.data",
        "2010": "record is null, not an object",
        "2011": "timestamp is a float, not an integer of ms since the epoch",
        "2012": "creds is a list, not an object",
    }
    leak_free(*plan.skipped)


def test_odd_records_are_malformed(make_vault: Callable[..., vault.Vault],
                                                       copy_of: Callable[[str], Path]) -> None:
    """Too large, an id unfit for a name, bytes for creds: reported per record, not fatal."""
    small = make_vault(ttl=TTL, max_entry_size=512)
    plan = baileys.plan_cache_file(copy_of("cache-baileys7.json"), small, now=NOW)
    assert plan.entries == () and all("entry limit of 512" in s.reason for s in plan.skipped)
    path = copy_of("cache-baileys7.json")
    path.write_bytes(b'{"a\\u0007b": ' + json.dumps(json.loads(path.read_bytes())["1001"]).encode()
                     + b"}")
    (skip,) = baileys.plan_cache_file(path, small, now=NOW).skipped
    assert skip.source == "a\x07b" and "control character" in skip.reason
    path.write_bytes(b'{"1": {"creds": {"0": 1}, "keys": {}, "timestamp": %d}}' % NOW_MS)
    (skip,) = baileys.plan_cache_file(path, small, now=NOW).skipped
    assert skip.reason == "creds is bytes, not an object"  # a Uint8Array's JSON
    with pytest.raises(MigrationError, match="timezone-aware"):
        baileys.plan_cache_file(path, small, now=datetime(2025, 6, 1))


@pytest.mark.parametrize("content", [
    b"", b"not json", b"[1, 2]", b"\xff\xfe{}", b"[" * 100_000,
    b'{"1": {"creds": "' + hygiene.CANARY_VALUE.encode()])
def test_unreadable_cache_files_raise_without_content(vlt: vault.Vault, tmp_path: Path,
                                                      content: bytes) -> None:
    """A file that is not a JSON object raises MigrationError saying why, not what it holds."""
    path = tmp_path / "cache.json"
    path.write_bytes(content)
    with pytest.raises(MigrationError) as caught:
        baileys.plan_cache_file(path, vlt, now=NOW)
    assert hygiene.CANARY_VALUE not in str(caught.value) and str(path) in str(caught.value)


def test_symlinks_and_missing_sources_are_refused(vlt: vault.Vault, tmp_path: Path,
                                                  copy_of: Callable[[str], Path]) -> None:
    """A symlinked cache file or folder is not followed; a missing one raises MigrationError."""
    folder = copy_of("auth")
    (tmp_path / "link.json").symlink_to(copy_of("cache-baileys7.json"))
    (tmp_path / "link-dir").symlink_to(folder)
    with pytest.raises(MigrationError, match="symlink"):
        baileys.plan_cache_file(tmp_path / "link.json", vlt)
    with pytest.raises(MigrationError, match="not a directory"):
        baileys.plan_auth_folder(tmp_path / "link-dir", vlt, prefix="wa")
    with pytest.raises(MigrationError, match="No such file"):
        baileys.plan_cache_file(tmp_path / "missing.json", vlt)
    for bad in ("", "/wa", "wa/", "w\na"):
        with pytest.raises((MigrationError, FormatError)):
            baileys.plan_auth_folder(folder, vlt, prefix=bad)


def test_apply_refuses_to_overwrite_unless_asked(vlt: vault.Vault,
                                                 copy_of: Callable[[str], Path]) -> None:
    """An existing entry of a planned name is reported and kept; overwrite=True replaces it."""
    vlt.put("company/1001", {"service": "own"})
    plan = baileys.plan_cache_file(copy_of("cache-baileys7.json"), vlt, now=NOW)
    assert [e.exists for e in plan.entries] == [True, False, False]
    result = baileys.apply(plan, vlt)
    assert [o.status for o in result.outcomes] == [EXISTS, IMPORTED, IMPORTED]
    assert "overwrite=True" in result.outcomes[0].reason and not result.verified
    assert vlt.get("company/1001") == {"service": "own"}
    again = baileys.apply(plan, vlt, overwrite=True)
    assert [o.status for o in again.outcomes] == [IMPORTED, PRESENT, PRESENT] and again.verified


def test_rerun_of_apply_finds_everything_present(vlt: vault.Vault,
                                                 copy_of: Callable[[str], Path]) -> None:
    """Applying a plan twice (say after a crash) writes nothing new and still verifies."""
    plan = baileys.plan_cache_file(copy_of("cache-baileys7.json"), vlt, now=NOW)
    baileys.apply(plan, vlt)
    files_before = {p: p.stat().st_mtime_ns for p in vlt.directory.glob("*.cve")}
    result = baileys.apply(plan, vlt)
    assert result.verified and {o.status for o in result.outcomes} == {PRESENT}
    assert {p: p.stat().st_mtime_ns for p in vlt.directory.glob("*.cve")} == files_before


def test_apply_detects_writes_that_do_not_verify(vlt: vault.Vault, copy_of: Callable[[str], Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that stores something else is MISMATCH; one that raises is FAILED."""
    plan = baileys.plan_cache_file(copy_of("cache-baileys7.json"), vlt, now=NOW)
    real = entries_of(vlt).write

    def corrupting(name: str, plaintext: bytes, created: int, expires: int) -> None:
        if name == "company/1001":
            plaintext = plaintext.replace(b'"registrationId":4711', b'"registrationId":4712')
        if name == "company/1002":
            raise OSError(28, "No space left on device")
        real(name, plaintext, created, expires)

    monkeypatch.setattr(entries_of(vlt), "write", corrupting)
    result = baileys.apply(plan, vlt)
    assert [(o.status, o.reason) for o in result.outcomes] == [
        (MISMATCH, "the entry opens to a different value"),
        (FAILED, "OSError: No space left on device"), (IMPORTED, "")]
    assert not result.verified


def test_verify_detects_a_tampered_vault(vlt: vault.Vault,
                                         copy_of: Callable[[str], Path]) -> None:
    """After apply, replaced values, re-dated, corrupted and deleted entries all fail verify."""
    plan = baileys.plan_cache_file(copy_of("cache-seed.json"), vlt, now=NOW)
    assert baileys.apply(plan, vlt).verified
    first, second, third, fourth = plan.entries
    created, expires = _migrate.ms_of(first.created_at), _migrate.ms_of(first.expires_at)
    entries_of(vlt).write(first.name, tagged({"creds": {}, "keys": {}}), created, expires)
    entries_of(vlt).write(second.name, second.plaintext.data, created + 1, expires)
    path = vlt.info(third.name).file
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    vlt.delete(fourth.name)
    assert [(o.status, o.reason.split(":")[0]) for o in baileys.verify(plan, vlt)] == [
        (MISMATCH, "the entry opens to a different value"),
        (MISMATCH, "the entry holds other timestamps"),
        (MISMATCH, "DecryptionError"), (MISMATCH, "EntryNotFoundError")]


# ---- removing the plaintext ---------------------------------------------------------------

def test_remove_plaintext_refuses_unless_verified(vlt: vault.Vault,
                                                  copy_of: Callable[[str], Path]) -> None:
    """No removal after an unverified apply, with another plan's result, or a tampered vault."""
    path = copy_of("cache-baileys7.json")
    vlt.put("company/1001", {"service": "own"})
    plan = baileys.plan_cache_file(path, vlt, now=NOW)
    result = baileys.apply(plan, vlt)
    with pytest.raises(MigrationError, match="1 of 3 entries are not imported and verified"):
        baileys.remove_plaintext(plan, result, vlt)
    good = baileys.apply(plan, vlt, overwrite=True)
    other = baileys.plan_cache_file(path, vlt, now=NOW)
    with pytest.raises(MigrationError, match="not the outcome of this plan"):
        baileys.remove_plaintext(other, good, vlt)
    vlt.delete("company/1002")  # the vault changed after the verified apply
    with pytest.raises(MigrationError, match="'company/1002', mismatch"):
        baileys.remove_plaintext(plan, good, vlt)
    assert path.read_bytes() == (DATA / "cache-baileys7.json").read_bytes()


def test_remove_plaintext_overwrites_then_deletes(vlt: vault.Vault,
                                                  copy_of: Callable[[str], Path]) -> None:
    """After a verified apply the file is overwritten in place, then unlinked."""
    path = copy_of("cache-baileys7.json")
    original = path.read_bytes()
    plan = baileys.plan_cache_file(path, vlt, now=NOW)
    result = baileys.apply(plan, vlt)
    fd = os.open(path, os.O_RDONLY)  # still sees the inode after the unlink
    try:
        assert baileys.remove_plaintext(plan, result, vlt) == [path]
        left = os.pread(fd, len(original) + 1, 0)
    finally:
        os.close(fd)
    assert not path.exists() and len(left) == len(original) and left != original
    assert hygiene.CANARY_VALUE.encode() not in left
    assert len(vlt.names()) == 3


def test_remove_plaintext_keeps_skipped_records_unless_discarded(
        vlt: vault.Vault, copy_of: Callable[[str], Path]) -> None:
    """Expired or malformed records live only in the file: removal needs discard_skipped."""
    path = copy_of("cache-seed.json")
    plan = baileys.plan_cache_file(path, vlt, now=NOW)
    result = baileys.apply(plan, vlt)
    with pytest.raises(MigrationError, match="8 records or files were skipped") as caught:
        baileys.remove_plaintext(plan, result, vlt)
    assert "discard_skipped" in (caught.value.hint or "") and path.exists()
    baileys.remove_plaintext(plan, result, vlt, discard_skipped=True)
    assert not path.exists()


def test_remove_plaintext_refuses_a_changed_or_linked_source(
        vlt: vault.Vault, copy_of: Callable[[str], Path]) -> None:
    """A source written since the plan, or with a second hard link, is left alone."""
    path = copy_of("cache-baileys7.json")
    plan = baileys.plan_cache_file(path, vlt, now=NOW)
    result = baileys.apply(plan, vlt)
    os.link(path, path.with_name("other-link.json"))
    with pytest.raises(MigrationError, match="2 hard links"):
        baileys.remove_plaintext(plan, result, vlt)
    with path.open("ab") as stream:
        stream.write(b" ")
    with pytest.raises(MigrationError, match="changed since the plan"):
        baileys.remove_plaintext(plan, result, vlt)
    assert path.exists()


# ---- auth folder -----------------------------------------------------------------------------

def test_auth_folder_plan_names_follow_file_stems(vlt: vault.Vault,
                                                  copy_of: Callable[[str], Path]) -> None:
    """Each file is entry <prefix>/<stem>: Baileys' escaped ids ('/' -> '__', ':' -> '-') kept."""
    folder = copy_of("auth")
    os.utime(folder / "creds.json", ns=((NOW_MS - 5000) * 1_000_000,) * 2)
    plan = baileys.plan_auth_folder(folder, vlt, prefix="wa/shop-7", now=NOW)
    assert [e.name for e in plan.entries] == [f"wa/shop-7/{s}" for s in AUTH_STEMS]
    assert {"wa/shop-7/app-state-sync-key-AAAAAKx__", "wa/shop-7/creds",
            "wa/shop-7/sender-key-120363025246125888@g.us--4915100000001--0",
            "wa/shop-7/pre-key-1"} <= {e.name for e in plan.entries}
    assert plan.skipped == () and vlt.names() == []
    times = {e.source: e.created_at for e in plan.entries}
    assert times["creds.json"] == NOW - timedelta(seconds=5)
    assert times["pre-key-1.json"] == NOW - HOUR
    leak_free(plan)


def test_auth_folder_apply_is_byte_exact(vlt: vault.Vault,
                                         copy_of: Callable[[str], Path]) -> None:
    """Every file opens to codec.loads(file, "node"), top-level bytes and scalars included."""
    folder = copy_of("auth")
    result = baileys.apply(baileys.plan_auth_folder(folder, vlt, prefix="wa", now=NOW), vlt)
    assert result.verified and len(result.outcomes) == len(AUTH_STEMS)
    for stem in AUTH_STEMS:
        expected = codec.loads((folder / f"{stem}.json").read_bytes(), "node")
        assert tagged(at_now(vlt, f"wa/{stem}")) == tagged(expected)
    assert type(at_now(vlt, "wa/session-4915100000001.0")) is bytes
    assert at_now(vlt, "wa/lid-mapping-4915100000001") == "123456789012345"
    assert at_now(vlt, "wa/device-list-4915100000001") == ["0", "7"]
    assert at_now(vlt, "wa/creds")["noiseKey"]["private"] == CANARY_KEY


def test_auth_folder_expired_files(vlt: vault.Vault, copy_of: Callable[[str], Path]) -> None:
    """A file last written before the TTL is skipped, or imported re-dated with include_expired."""
    folder = copy_of("auth")
    old = NOW_MS - 30 * 86_400_000
    os.utime(folder / "pre-key-1.json", ns=(old * 1_000_000,) * 2)
    plan = baileys.plan_auth_folder(folder, vlt, prefix="wa", now=NOW)
    assert [(s.source, s.kind) for s in plan.skipped] == [("pre-key-1.json", "expired")]
    plan = baileys.plan_auth_folder(folder, vlt, prefix="wa", now=NOW, include_expired=True)
    (entry,) = [e for e in plan.entries if e.redated_from is not None]
    assert entry.name == "wa/pre-key-1" and entry.redated_from == _migrate._dt(old)
    assert entry.created_at == NOW


def test_auth_folder_leaves_other_things_alone(vlt: vault.Vault, tmp_path: Path,
                                               copy_of: Callable[[str], Path]) -> None:
    """Symlinks, subfolders and non-JSON files are ignored, kept, and keep their folder."""
    folder = copy_of("auth")
    (folder / "notes.txt").write_text("hello")
    (folder / "backup").mkdir()
    (folder / "link.json").symlink_to(folder / "creds.json")
    (folder / "broken.json").write_text("")
    plan = baileys.plan_auth_folder(folder, vlt, prefix="wa", now=NOW)
    assert [(s.source, s.kind) for s in plan.skipped] == [
        ("backup", "ignored"), ("broken.json", "malformed"), ("link.json", "ignored"),
        ("notes.txt", "ignored")]
    result = baileys.apply(plan, vlt)
    removed = baileys.remove_plaintext(plan, result, vlt, discard_skipped=True)
    assert len(removed) == len(AUTH_STEMS) + 1
    assert sorted(p.name for p in folder.iterdir()) == ["backup", "link.json", "notes.txt"]


def test_auth_folder_export_round_trip_and_removal(vlt: vault.Vault, tmp_path: Path,
                                                  copy_of: Callable[[str], Path]) -> None:
    """Export writes the same file names and bytes (Baileys 7 form), mtimes kept; then removal."""
    folder = copy_of("auth")
    originals = {p.name: (p.read_bytes(), p.stat().st_mtime_ns // 1_000_000)
                 for p in folder.iterdir()}
    plan = baileys.plan_auth_folder(folder, vlt, prefix="wa/shop", now=NOW)
    result = baileys.apply(plan, vlt)
    vlt.put("wa/shop/nested/other", 1)  # not a file of this folder: not exported
    out = tmp_path / "restored"
    written = baileys.export_auth_folder(vlt, "wa/shop", out)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns // 1_000_000) for p in written} \
        == originals
    assert baileys.export_node(vlt, "wa/shop/creds") == originals["creds.json"][0]
    with pytest.raises(MigrationError, match="already exist"):
        baileys.export_auth_folder(vlt, "wa/shop", out)
    with pytest.raises(MigrationError, match="no entry is named"):
        baileys.export_auth_folder(vlt, "nothing", tmp_path / "empty")
    baileys.remove_plaintext(plan, result, vlt)
    assert not folder.exists()


# ---- export of a cache file --------------------------------------------------------------

def test_export_cache_file_reproduces_the_original_bytes(vlt: vault.Vault,
                                                         copy_of: Callable[[str], Path]) -> None:
    """A Baileys 7 cache file comes back byte for byte, companies in JavaScript's key order."""
    path = copy_of("cache-baileys7.json")
    baileys.apply(baileys.plan_cache_file(path, vlt, now=NOW), vlt)
    names = ["company/acme-eu", "company/1002", "company/1001"]
    assert baileys.export_cache_file(vlt, names) == path.read_bytes()
    assert _export._js_order(["b", "10", "2", "a", "01", "4294967295"]) == [
        "2", "10", "b", "a", "01", "4294967295"]


def test_export_normalizes_the_other_buffer_forms(vlt: vault.Vault,
                                                  copy_of: Callable[[str], Path]) -> None:
    """Every Buffer form exports as Baileys 7 writes it: the base64 record's exact bytes."""
    seed = copy_of("cache-seed.json")
    raw = seed.read_bytes()
    baileys.apply(baileys.plan_cache_file(seed, vlt, now=NOW), vlt)
    base64_text = raw[raw.index(b'"2001":') + 7:raw.index(b',"2002":')]
    for company in FORMS:
        exported = baileys.export_cache_file(vlt, [f"company/{company}"])
        assert exported == b'{"%s":%s}' % (company.encode(), base64_text)
        record = json.dumps(json.loads(raw)[company], separators=(",", ":")).encode()
        assert exported[len(company) + 4:-1] == codec.dumps(codec.loads(record, "node"), "node")


def test_export_refuses_entries_that_are_not_company_records(vlt: vault.Vault) -> None:
    """Export names the entry that is outside the prefix or holds something else."""
    vlt.put("company/x", [1, 2])
    vlt.put("plain", {"creds": {}, "keys": {}})
    with pytest.raises(MigrationError, match="'company/x' does not hold a migrated company"):
        baileys.export_cache_file(vlt, ["company/x"])
    with pytest.raises(MigrationError, match="not under the prefix"):
        baileys.export_cache_file(vlt, ["plain"])
    assert baileys.export_cache_file(vlt, ["plain"], prefix="").startswith(b'{"plain":{')


def test_bare_ids_and_live_entries_are_readable_with_get(vlt: vault.Vault,
                                                         tmp_path: Path) -> None:
    """With prefix "" the entry is the company id; a fresh record is served by get() at once."""
    stamp = time.time_ns() // 1_000_000 - 60_000
    creds = {"noiseKey": {"private": CANARY_KEY}, "advSecretKey": hygiene.CANARY_VALUE}
    path = tmp_path / "cache.json"
    path.write_bytes(codec.dumps({"42": {"creds": creds, "keys": {}, "timestamp": stamp}}, "node"))
    plan = baileys.plan_cache_file(path, vlt, prefix="")
    assert baileys.apply(plan, vlt).verified
    assert vlt.get("42") == {"creds": creds, "keys": {}}
    assert baileys.export_cache_file(vlt, ["42"], prefix="") == path.read_bytes()


# ---- hygiene --------------------------------------------------------------------------------

def test_plans_never_expose_values(vlt: vault.Vault, copy_of: Callable[[str], Path]) -> None:
    """Reprs show no value, asdict keeps the plaintext hidden, pickling is refused."""
    plan = baileys.plan_cache_file(copy_of("cache-seed.json"), vlt, now=NOW)
    result = baileys.apply(plan, vlt)
    as_json = json.dumps(dataclasses.asdict(plan), default=str)  # what a --json might do
    assert as_json.count('"plaintext": "<hidden>"') == len(plan.entries)
    leak_free(plan, result, *plan.entries, *result.outcomes, as_json)
    with pytest.raises(TypeError):
        pickle.dumps(plan)
    assert isinstance(MigrationError("x"), VaultError)


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.text("abcdefghij_-:/é", min_size=1, max_size=8),  # no Buffer shapes
                       st.one_of(st.binary(max_size=40), st.text(max_size=20),
                                 st.integers(-(2**53) + 1, 2**53 - 1), st.booleans(), st.none(),
                                 st.lists(st.binary(max_size=8), max_size=3)), max_size=6))
def test_folder_file_round_trip_property(value: dict[str, Any]) -> None:
    """Any file Baileys 7 could write imports and exports back to the same bytes."""
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work, "auth")
        folder.mkdir()
        (folder / "x.json").write_bytes(codec.dumps(value, "node"))
        v = vault.Vault(Path(work, "vault"), keys=vault.KeyRing([vault.Key.generate()]))
        plan = baileys.plan_auth_folder(folder, v, prefix="p")
        assert baileys.apply(plan, v).verified
        assert baileys.export_node(v, "p/x") == (folder / "x.json").read_bytes()


def test_library_migration_and_export_write_their_own_audit_records(
        vlt: vault.Vault, copy_of: Callable[[str], Path], tmp_path: Path) -> None:
    """apply, remove_plaintext and both exports append audit records (counts, never names or
    values) without the CLI; write_cache_file creates a new private file, never over one."""
    folder = copy_of("auth")
    plan = baileys.plan_auth_folder(folder, vlt, prefix="wa", now=NOW)
    result = baileys.apply(plan, vlt)
    baileys.remove_plaintext(plan, result, vlt)
    seed = copy_of("cache-baileys7.json")
    cache_plan = baileys.plan_cache_file(seed, vlt, now=NOW)
    baileys.apply(cache_plan, vlt)
    out = tmp_path / "out.json"
    baileys.write_cache_file(vlt, [e.name for e in cache_plan.entries], out)
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_bytes()
    with pytest.raises(vault.ConfigurationError, match="exists"):
        baileys.write_cache_file(vlt, [cache_plan.entries[0].name], out)
    baileys.export_auth_folder(vlt, "wa", tmp_path / "auth-out", new_directory=True)
    with pytest.raises(vault.ConfigurationError, match="exists"):
        baileys.export_auth_folder(vlt, "wa", tmp_path / "auth-out", new_directory=True)
    log = AuditLog(vlt.directory, current_context())
    records = [(r["action"], r["outcome"]) for r in log.records()]
    assert records == [("migrate", "verified"), ("migrate", "plaintext-removed"),
                       ("migrate", "verified"), ("export", "written"), ("export", "written")]
    text = (vlt.directory / "audit.jsonl").read_text()
    assert "wa/" not in text and "company/" not in text and str(CANARY_KEY) not in text


def test_remove_plaintext_survives_a_folder_swapped_for_a_symlink(
        vlt: vault.Vault, copy_of: Callable[[str], Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder's owner swaps it for a symlink to another directory between the checks and
    the overwrites (this won 10 of 10 tries): the files of that other directory, same names,
    are neither overwritten nor removed, and the plaintext that was checked is destroyed."""
    folder = copy_of("auth")
    plan = baileys.plan_auth_folder(folder, vlt, prefix="wa", now=NOW)
    result = baileys.apply(plan, vlt)
    victim = tmp_path / "victim"
    victim.mkdir()
    for path in plan.digests:
        (victim / Path(path).name).write_bytes(b"someone else's file")
    moved = tmp_path / "moved-away"
    real = _files.overwrite_and_unlink_at
    swapped: list[bool] = []

    def swap_then_overwrite(dir_fd: int, name: str, identity: tuple[int, int]) -> None:
        if not swapped:
            folder.rename(moved)
            folder.symlink_to(victim, target_is_directory=True)
            swapped.append(True)
        real(dir_fd, name, identity)

    monkeypatch.setattr(_files, "overwrite_and_unlink_at", swap_then_overwrite)
    removed = baileys.remove_plaintext(plan, result, vlt)
    assert swapped and len(removed) == len(plan.digests)
    assert all((victim / Path(p).name).read_bytes() == b"someone else's file"
               for p in plan.digests)
    assert not [p for p in moved.iterdir() if p.suffix == ".json"]
    folder.unlink()
    folder.symlink_to(victim, target_is_directory=True)  # a symlink named as the folder
    with pytest.raises(MigrationError, match="symlink or not a directory"):
        baileys.remove_plaintext(plan, result, vlt)
