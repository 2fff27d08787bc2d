"""Tests of the migration's decisions an operator makes: objects that are bytes only by their
shape, removing the plaintext while records were skipped, and what the audit log says of it.

CLI tests run ``credseal`` through the ``cli`` fixture, which fails a test whose output shows a
secret it knows (tests/helpers/clirunner.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vault
from tests import hygiene
from tests.helpers.clirunner import PLAINTEXT, Cli
from vault import codec
from vault._store.audit import AuditLog
from vault._store.store import entries_of
from vault.config import current_context
from vault.integrations import baileys
from vault.integrations.baileys import _shapes

DATA = Path(__file__).parent.parent / "data" / "migrate"
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)  # the fixtures' "now" (generate.mjs)
NOW_MS = 1_748_779_200_000
LONG_TTL = str(10 * 365 * 86400)  # no fixture record is expired under it


def cli_vault(cli: Cli) -> dict[str, str]:
    """An env-source vault for the CLI; returns the settings that open it."""
    ring = vault.KeyRing([vault.Key.generate()])
    cli.add_ring(ring)
    vault.Vault(cli.dir, keys=ring)
    return {"key_source": "env", "keys": ring.to_text(), "ttl": LONG_TTL}


def counts_cache(path: Path) -> Path:
    """A cache file whose record holds a counter map, Uint8Array JSON and marked Buffers."""
    record = {"creds": {"counts": {"0": 5, "1": 7},
                        "noiseKey": {"type": "Buffer", "data": "AQID"},
                        "array": {"type": "Buffer", "data": [1, 2, 3]},
                        "legacy": {"buffer": True, "value": "AQID"},
                        "advSecretKey": PLAINTEXT},
              "keys": {"list": [{"1": 223, "0": 251}]},
              "timestamp": int(time.time() * 1000) - 60_000}
    path.write_text(json.dumps({"7": record}))
    return path


def audit(directory: Path) -> list[dict[str, Any]]:
    """The migrate records of a vault's audit log."""
    log = AuditLog(directory, current_context())
    return [r for r in log.records() if r["action"] == "migrate"]


# ---- bytes by shape alone: the CLI ---------------------------------------------------------

def test_dry_run_lists_every_object_bytes_by_its_shape_alone(cli: Cli, tmp_path: Path) -> None:
    """The dry run names entry and JSON path of each such object (never its ints), not the
    marked Buffers, says --apply needs a decision, and --json lists the same."""
    settings = cli_vault(cli)
    source = counts_cache(tmp_path / "cache.json")
    dry = cli.run("migrate", "--from-cache-file", str(source), **settings)
    assert dry.returncode == 0, dry.stderr
    shaped = [line.split()[2:4] for line in dry.stdout.splitlines()
              if line.startswith("by shape?")]
    assert shaped == [["company/7", "$.creds.counts"], ["company/7", "$.keys.list[0]"]]
    assert "251" not in dry.stdout and "223" not in dry.stdout
    assert "--bytes-by-shape=revive" in dry.stderr and "2 objects in 1 entry" in dry.stderr
    listed = cli.run("migrate", "--from-cache-file", str(source), "--json", **settings)
    report = json.loads(listed.stdout)
    assert report["bytes_by_shape"] is None and report["by_shape"] == [
        {"name": "company/7", "source": "7", "path": "$.creds.counts", "length": 2},
        {"name": "company/7", "source": "7", "path": "$.keys.list[0]", "length": 2}]
    assert vault.Vault(cli.dir).names() == []


def test_apply_imports_objects_bytes_by_shape_only_as_told(cli: Cli, tmp_path: Path) -> None:
    """--apply refuses until --bytes-by-shape decides; keep imports the objects, revive bytes;
    marked Buffers are bytes either way."""
    settings = cli_vault(cli)
    source = counts_cache(tmp_path / "cache.json")
    refused = cli.run("migrate", "--from-cache-file", str(source), "--apply", **settings)
    assert refused.returncode == 2 and "nothing was imported" in refused.stderr
    assert "--bytes-by-shape=keep" in refused.stderr and "$.creds.counts" in refused.stdout
    assert vault.Vault(cli.dir).names() == []
    v = vault.Vault(cli.dir, keys=vault.KeyRing.from_text(settings["keys"]))
    kept = cli.run("migrate", "--from-cache-file", str(source), "--apply",
                   "--bytes-by-shape=keep", **settings)
    assert kept.returncode == 0, kept.stderr
    assert "kept object" in kept.stdout
    value = v.get("company/7")
    assert value["creds"]["counts"] == {"0": 5, "1": 7}
    assert value["keys"]["list"] == [{"1": 223, "0": 251}]
    assert [value["creds"][k] for k in ("noiseKey", "array", "legacy")] == [b"\x01\x02\x03"] * 3
    revived = cli.run("migrate", "--from-cache-file", str(source), "--apply", "--overwrite",
                      "--bytes-by-shape=revive", "--json", **settings)
    assert revived.returncode == 0, revived.stderr
    assert json.loads(revived.stdout)["bytes_by_shape"] == "revive"
    value = v.get("company/7")
    assert value["creds"]["counts"] == b"\x05\x07" and value["keys"]["list"] == [b"\xfb\xdf"]


def test_a_source_without_such_objects_needs_no_decision(cli: Cli, tmp_path: Path) -> None:
    """A Baileys 7 cache (marked Buffers only) applies without --bytes-by-shape."""
    settings = cli_vault(cli)
    source = tmp_path / "cache.json"
    shutil.copy(DATA / "cache-baileys7.json", source)
    applied = cli.run("migrate", "--from-cache-file", str(source), "--apply", "--json",
                      **settings)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["by_shape"] == [] and "by shape" not in applied.stderr


# ---- bytes by shape alone: the library ------------------------------------------------------

def test_keep_changes_only_the_objects_bytes_by_shape(
        make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """In the seed only the Uint8Array record has such objects; keep leaves them objects and
    the base64, int-array and legacy Buffers exactly as revive (and the codec) reads them."""
    source = tmp_path / "seed.json"
    shutil.copy(DATA / "cache-seed.json", source)
    revive = baileys.plan_cache_file(source, make_vault("a", ttl=86400), now=NOW)
    keep = baileys.plan_cache_file(source, make_vault("b", ttl=86400), now=NOW,
                                   bytes_by_shape="keep")
    assert revive.bytes_by_shape == "revive" and keep.bytes_by_shape == "keep"
    assert {b.source for b in keep.by_shape} == {"2003"} and revive.by_shape == keep.by_shape
    assert "$.creds.noiseKey.private" in {b.path for b in keep.by_shape}
    for r, k in zip(revive.entries, keep.entries, strict=True):
        same = r.plaintext.data == k.plaintext.data
        assert same == (r.source != "2003")
    (uint8,) = [e for e in keep.entries if e.source == "2003"]
    private = codec.loads(uint8.plaintext.data)["creds"]["noiseKey"]["private"]
    assert type(private) is dict and len(private) == 32
    with pytest.raises(baileys.MigrationError, match="'revive' or 'keep'"):
        baileys.plan_cache_file(source, make_vault("c"), bytes_by_shape="bytes")


def test_auth_folder_files_by_shape_are_listed_and_kept(
        make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """A whole file, an escaped key ("\\u0030") and a nested object are found; keep keeps."""
    folder = tmp_path / "auth"
    folder.mkdir()
    (folder / "a.json").write_text('{"0": 1, "1": 2}')
    (folder / "b.json").write_text('{"x": {"\\u0030": 9}, "y": {"type": "Buffer", "data": ""}}')
    (folder / "c.json").write_text('{"x": {"0": 1, "2": 2}, "z": [1, 2]}')  # not "0".."n-1"
    v = make_vault()
    plan = baileys.plan_auth_folder(folder, v, prefix="wa", bytes_by_shape="keep")
    assert [(b.name, b.source, b.path, b.length) for b in plan.by_shape] == [
        ("wa/a", "a.json", "$", 2), ("wa/b", "b.json", "$.x", 1)]
    assert baileys.apply(plan, v).verified
    assert v.get("wa/a") == {"0": 1, "1": 2} and v.get("wa/b") == {"x": {"0": 9}, "y": b""}
    assert v.get("wa/c") == {"x": {"0": 1, "2": 2}, "z": [1, 2]}


_LEAF = st.one_of(st.integers(-3, 300), st.booleans(), st.none(), st.text("ab0", max_size=3),
                  st.lists(st.integers(0, 255), max_size=3).map(
                      lambda b: {"type": "Buffer", "data": b}),
                  st.lists(st.integers(0, 255), min_size=1, max_size=4).map(
                      lambda b: {str(i): x for i, x in enumerate(b)}))


@settings(max_examples=60, deadline=None)
@given(st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "0", "1"]), inner,
                                                 max_size=3)), max_leaves=12))
def test_revive_is_the_codec_and_keep_undoes_only_shapes(document: Any) -> None:
    """revive returns exactly codec.loads(.., "node"); keep returns the plain objects at the
    listed paths, where revive has their bytes, and nothing else differs."""
    text = json.dumps(document)
    revived, found = _shapes.sort_out(json.loads(text), codec.loads(text, "node"), "revive")
    assert codec.dumps(revived) == codec.dumps(codec.loads(text, "node"))
    kept, found_kept = _shapes.sort_out(json.loads(text), codec.loads(text, "node"), "keep")
    assert found_kept == found

    def undo(plain: Any, value: Any, path: str) -> Any:
        if path in {p for p, _ in found} and type(value) is bytes:
            assert value == bytes(plain[str(i)] for i in range(len(plain)))
            return plain
        if type(value) is dict:
            return {k: undo(plain[k], v, f"{path}.{k}" if k.isidentifier() else
                            f'{path}[{json.dumps(k)}]') for k, v in value.items()}
        if type(value) is list:
            return [undo(p, v, f"{path}[{i}]") for i, (p, v) in enumerate(zip(plain, value,
                                                                              strict=True))]
        return value

    assert codec.dumps(kept) == codec.dumps(undo(json.loads(text), revived, "$"))


# ---- removing the plaintext: the CLI flag and the audit ------------------------------------

def test_cli_remove_plaintext_with_skipped_records_names_its_flag(cli: Cli,
                                                                  tmp_path: Path) -> None:
    """Malformed records block --remove-plaintext with a hint naming --discard-skipped, the
    refusal is audited (reason kind and source path, no value), and the flag then removes."""
    settings = cli_vault(cli)
    source = tmp_path / "seed.json"
    shutil.copy(DATA / "cache-seed.json", source)
    args = ("migrate", "--from-cache-file", str(source), "--apply", "--bytes-by-shape=revive",
            "--remove-plaintext")
    refused = cli.run(*args, **settings)
    assert refused.returncode == 4 and "nothing was removed" in refused.stderr
    (hint,) = [line for line in refused.stderr.splitlines() if line.startswith("credseal: hint")]
    assert "--discard-skipped" in hint and source.exists()
    records = audit(cli.dir)
    assert [(r["outcome"], r.get("reason"), r["source_path"]) for r in records] == [
        ("verified", None, str(source)), ("refused", "skipped", str(source))]
    lonely = cli.run("migrate", "--from-cache-file", str(source), "--discard-skipped",
                     **settings)
    assert lonely.returncode == 2 and "--remove-plaintext" in lonely.stderr
    removed = cli.run(*args, "--discard-skipped", "--json", **settings)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["plaintext_removed"] == [str(source)]
    assert not source.exists()
    assert [r["outcome"] for r in audit(cli.dir)][-1] == "plaintext-removed"
    text = (cli.dir / "audit.jsonl").read_text()
    assert hygiene.CANARY_VALUE not in text and "company/" not in text


def test_every_refusal_is_audited_by_its_kind(make_vault: Callable[..., vault.Vault],
                                             tmp_path: Path) -> None:
    """Other plan, unverified, skipped, changed and linked sources: each refusal appends
    outcome "refused" with its reason kind and the source path."""
    v = make_vault(ttl=86400)
    seed, cache = tmp_path / "seed.json", tmp_path / "cache.json"
    shutil.copy(DATA / "cache-seed.json", seed)
    shutil.copy(DATA / "cache-baileys7.json", cache)
    plan = baileys.plan_cache_file(cache, v, now=NOW)
    result = baileys.apply(plan, v)
    attempts: list[Callable[[], object]] = [
        lambda: baileys.remove_plaintext(baileys.plan_cache_file(cache, v, now=NOW), result, v)]
    seed_plan = baileys.plan_cache_file(seed, v, now=NOW)
    seed_result = baileys.apply(seed_plan, v)
    attempts.append(lambda: baileys.remove_plaintext(seed_plan, seed_result, v))
    entries_of(v).write(plan.entries[0].name, codec.dumps({"creds": {}, "keys": {}}),
                        NOW_MS, NOW_MS + 1000)
    attempts.append(lambda: baileys.remove_plaintext(plan, result, v))
    for attempt in attempts:
        with pytest.raises(baileys.MigrationError):
            attempt()
    result = baileys.apply(plan, v, overwrite=True)
    os.link(cache, tmp_path / "second-link.json")
    with pytest.raises(baileys.MigrationError, match="hard links"):
        baileys.remove_plaintext(plan, result, v)
    (tmp_path / "second-link.json").unlink()
    cache.write_bytes(cache.read_bytes() + b" ")
    with pytest.raises(baileys.MigrationError, match="changed since the plan"):
        baileys.remove_plaintext(plan, result, v)
    refused = [(r["reason"], r["source_path"]) for r in audit(v.directory)
               if r["outcome"] == "refused"]
    assert refused == [("other-plan", str(cache)), ("skipped", str(seed)),
                       ("not-verified", str(cache)), ("hard-links", str(cache)),
                       ("changed", str(cache))]
    assert cache.exists() and seed.exists()


def test_a_long_source_path_is_audited_shortened(make_vault: Callable[..., vault.Vault],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A path over 200 characters is audited as the start of its file name plus a hash of the
    whole path, under 200 characters; a short one as it is, absolute."""
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    long_name = deep / ("cache-" + "f" * 150 + ".json")
    shutil.copy(DATA / "cache-baileys7.json", long_name)
    v = make_vault(ttl=86400)
    plan = baileys.plan_cache_file(long_name, v, now=NOW)
    assert baileys.apply(plan, v).verified
    baileys.remove_plaintext(plan, baileys.apply(plan, v), v)
    paths = [r["source_path"] for r in audit(v.directory)]
    assert len(paths) == 3 and len(set(paths)) == 1
    assert len(paths[0]) < 200 and paths[0].startswith(".../cache-fff")
    assert paths[0].endswith("]") and "[sha256:" in paths[0]
    shutil.copy(DATA / "cache-baileys7.json", tmp_path / "short.json")
    monkeypatch.chdir(tmp_path)
    baileys.apply(baileys.plan_cache_file("short.json", v, now=NOW), v)
    assert audit(v.directory)[-1]["source_path"] == os.path.join(os.getcwd(), "short.json")
