"""Metrics through the OpenTelemetry API (issue 15, part 3), read back with the SDK's
in-memory reader, over a real SQLite source made unavailable by moving its file away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider  # the dev extra installs the SDK
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import vault
from tests.helpers.clirunner import Cli, fill
from vault import ops
from vault._store.entries import name_stem
from vault.integrations.otel import instrument, rewrap_progress
from vault.sources import SQLiteSource


def points(reader: InMemoryMetricReader, where: Path | None = None
           ) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """Every metric's data points as (attributes, value), by metric name; with ``where``,
    only the points of that vault directory, its ``dir`` attribute left out."""
    found: dict[str, list[tuple[dict[str, Any], float]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "credseal"
            for metric in scope.metrics:
                chosen = []
                for p in metric.data.data_points:
                    attributes = dict(p.attributes or {})
                    if where is None or attributes.pop("dir", None) == str(where):
                        chosen.append((attributes, p.value))
                found[metric.name] = chosen
    return found


def test_cache_metrics_through_an_outage(tmp_path: Path) -> None:
    """Answers by origin, degraded, the breaker, the journal and quarantines, as an operator
    would graph them during an outage of the primary."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    db = tmp_path / "primary.db"
    with SQLiteSource(db) as setup:
        setup.create_schema()
    store = vault.Vault(tmp_path / "v", keys=vault.KeyRing([vault.Key.generate()]))
    with SQLiteSource(db) as source, vault.FallbackCache(source, store) as cache:
        assert instrument(cache, meter_provider=provider).enabled
        cache.save("a", {"n": 1})
        cache.save("c", {"n": 3})
        assert cache.get("a") == {"n": 1}
        before = points(reader, tmp_path / "v")
        assert before["credseal.cache.answers"] == [({"origin": "source"}, 1)]
        assert before["credseal.cache.degraded"] == [({}, 0)]
        assert before["credseal.breaker.state"] == [({"tier": "source"}, 0)]
        db.rename(tmp_path / "away.db")  # the primary is gone
        assert cache.get("a") == {"n": 1}
        cache.save("b", {"n": 2})  # journaled
        entry = tmp_path / "v" / f"{name_stem('c')}.cve"
        entry.write_bytes(entry.read_bytes()[:-1] + b"\x00")  # a damaged cached copy
        with pytest.raises(vault.SourceUnavailableError):
            cache.get("c")
        during = points(reader, tmp_path / "v")
        answers = dict((attrs["origin"], value) for attrs, value in
                       during["credseal.cache.answers"])
        assert answers == {"source": 1, "cache": 1}
        assert during["credseal.cache.degraded"] == [({}, 1)]
        assert during["credseal.journal.pending"] == [({}, 1)]
        assert during["credseal.journal.oldest_age"][0][1] >= 0
        assert during["credseal.journal.conflicts"] == [({}, 0)]
        assert during["credseal.quarantined"] == [({}, 1)]
        assert during["credseal.breaker.state"][0][0] == {"tier": "source"}


def test_rewrap_progress_counts_every_item(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    source = vault.keysources.PassphraseKeySource(tmp_path / "v", "otel test passphrase",
                                                  profile="test")
    source.create(vault.Key.generate())
    store = vault.Vault(tmp_path / "v", keys=source)
    for i in range(30):
        store.put(f"e{i}", i)
    result = ops.rotate(store, source, progress=rewrap_progress(meter_provider=provider))
    assert result.outcome == "rotated"
    by_target = dict((attrs["target"], value) for attrs, value in
                     points(reader)["credseal.rewrap.progress"])
    assert by_target["entries"] == 30


def test_without_opentelemetry_it_is_a_no_op(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "import vault\n"
        "from vault.integrations.otel import instrument, rewrap_progress\n"
        "v = vault.Vault(sys.argv[1], keys=vault.KeyRing([vault.Key.generate()]))\n"
        "from vault.testing import MemorySource\n"
        "cache = vault.FallbackCache(MemorySource(), v)\n"
        "print(instrument(cache).enabled, rewrap_progress()('entries', 1, 2))\n"
        "cache.save('a', 1); print(cache.get('a'))\n")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "v")],
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == ["False", "None", "1"]


def test_status_prometheus_for_the_textfile_collector(cli: Cli) -> None:
    """`credseal status --prometheus` prints the directory-level metrics; with --output it
    replaces a .prom file atomically, readable by node_exporter's own user (0644)."""
    keys = cli.init_env()
    fill(cli.dir, vault.KeyRing.from_text(keys), "a", "b")
    printed = cli.run("status", "--prometheus", key_source="env", keys=keys)
    assert printed.returncode == 0, printed.stderr
    key_id = vault.KeyRing.from_text(keys).primary.id
    assert f'credseal_entries{{dir="{cli.dir}",key_id="{key_id}"}} 2' in printed.stdout
    for name in ("credseal_journal_pending", "credseal_journal_conflicts",
                 "credseal_journal_oldest_age_seconds", "credseal_quarantined",
                 "credseal_rotation_unfinished"):
        assert f"# TYPE {name} gauge" in printed.stdout and f'{name}{{dir="{cli.dir}"}} 0' \
            in printed.stdout
    target = cli.home / "credseal.prom"
    written = cli.run("status", "--prometheus", "--output", str(target), key_source="env",
                      keys=keys)
    assert written.returncode == 0 and written.stdout == ""
    assert target.read_text() == printed.stdout
    assert target.stat().st_mode & 0o777 == 0o644
    assert cli.run("status", "--prometheus", "--output", str(cli.home / "x.txt"),
                   key_source="env", keys=keys).returncode == 2
    assert cli.run("status", "--output", str(target), key_source="env",
                   keys=keys).returncode == 2


def test_two_caches_are_told_apart_and_every_write_failure_counts(tmp_path: Path) -> None:
    """Two caches on one meter each get their points (attribute dir); five failed vault
    updates count five, though their log line is rate-limited to one."""
    from vault.testing import MemorySource

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    stores = [vault.Vault(tmp_path / name, keys=vault.KeyRing([vault.Key.generate()]),
                          max_entry_size=64) for name in ("one", "two")]
    caches = [vault.FallbackCache(MemorySource(), store) for store in stores]
    for cache in caches:
        instrument(cache, meter_provider=provider)
    caches[1].source.save("big", {"blob": "x" * 500})  # over max_entry_size: no local copy
    for _ in range(5):
        assert caches[1].get("big") == {"blob": "x" * 500}
    first, second = points(reader, tmp_path / "one"), points(reader, tmp_path / "two")
    assert first["credseal.cache.degraded"] == [({}, 0)]
    assert second["credseal.cache.answers"] == [({"origin": "source"}, 5)]
    assert second["credseal.write_through.failures"] == [({"tier": "local"}, 5)]
    assert "credseal.write_through.failures" not in first or not first[
        "credseal.write_through.failures"]
