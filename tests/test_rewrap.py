"""Tests of vault.rewrap: the rewrap rule shared by entries and journal records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from vault import format as fmt
from vault.errors import DecryptionError
from vault.rewrap import rewrap_all, rewrap_file
from vault.store import name_stem


@pytest.mark.parametrize("workers", [1, 4])
def test_rewrap_all_counts_in_order(workers: int) -> None:
    """Outcomes are counted, progress is reported in order, failures carry their error type
    and never a value, whatever the number of workers."""
    outcomes = {"a": ("rotated", "k1"), "b": ("current", None), "c": ("skipped", None),
                "d": ("rotated", "k1"), "e": ("rotated", "k2")}
    seen: list[tuple[int, int]] = []

    def one(item: str) -> tuple[str, str | None]:
        if item == "f":
            raise DecryptionError("entry failed authentication")
        return outcomes[item]

    report = rewrap_all([*outcomes, "f"], one, lambda done, total: seen.append((done, total)),
                        workers=workers)
    assert (report.rotated, report.current, report.skipped, report.failed) == (3, 1, 1, 1)
    assert report.by_key == {"k1": 2, "k2": 1}
    assert report.failures == (("f", "DecryptionError: entry failed authentication"),)
    assert seen == [(i, 6) for i in range(1, 7)]


def test_rewrap_file_outcomes(make_vault: Callable[..., vault.Vault],
                              ring: vault.KeyRing) -> None:
    """A file under an old key is rewrapped, one under the primary is current, a missing one
    is skipped; the new file opens to the same plaintext with the same timestamps."""
    v = make_vault(ttl=3600)
    v._put_at_time("x", {"v": 1}, 1_700_000_000_000)
    stem = name_stem("x")
    path = v._entry_path(stem)
    new_ring = ring.with_primary(vault.Key.generate())
    before = fmt.parse(Path(path).read_bytes())[0]
    assert rewrap_file(path, stem, v._lock(stem, "x"), new_ring, kind=fmt.KIND_ENTRY,
                       name="x") == ("rotated", ring.primary.id)
    after = fmt.parse(Path(path).read_bytes())[0]
    assert after.key_id.hex() == new_ring.primary.id
    assert (after.created_at, after.expires_at) == (before.created_at, before.expires_at)
    assert rewrap_file(path, stem, v._lock(stem, "x"), new_ring, kind=fmt.KIND_ENTRY,
                       name="x") == ("current", None)
    v.delete("x")
    assert rewrap_file(path, stem, v._lock(stem, "x"), new_ring, kind=fmt.KIND_ENTRY,
                       name="x") == ("skipped", None)
