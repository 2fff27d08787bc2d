"""Rewrapping: re-seal an envelope under the primary key, keeping its name and timestamps.

The one rule that ``Vault.rotate`` (entries) and ``Journal.rewrap`` (journal records) share,
taken from Tink's keyset rotation: under the lock that writers take, re-read the file (so a
newer write is never overwritten with older content), open it, seal the plaintext again, open
what was sealed and compare, and only then replace the file atomically and durably. A crash at
any point leaves the old file or the new one, each readable under a key the ring holds.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vault import files
from vault import format as fmt
from vault.errors import UnknownKeyError, VaultError
from vault.keys import KeyRing

__all__ = ["RotationReport", "rewrap_all", "rewrap_file"]


@dataclass(frozen=True)
class RotationReport:
    """The outcome of :meth:`Vault.rotate`.

    ``rotated``: rewrapped under the primary; ``current``: already under it; ``failed``: could
    not be opened or rewritten (see ``failures``); ``skipped``: vanished during the rotation.
    ``by_key`` counts rewrapped entries per old key id.
    """

    rotated: int = 0
    current: int = 0
    failed: int = 0
    skipped: int = 0
    by_key: dict[str, int] = field(default_factory=dict)
    failures: tuple[tuple[str, str], ...] = ()


def rewrap_file(path: str, stem: str, lock: files.FileLock, ring: KeyRing, *, kind: int,
                name: str) -> tuple[str, str | None]:
    """Rewrap the envelope at ``path`` under ``ring.primary``, keeping name and timestamps.

    Under ``lock`` (the one writers take): re-read the file, open it, seal the plaintext again,
    open what was sealed and compare, then replace the file atomically (temp files named after
    ``stem``). Returns (outcome, old key id): ("rotated", id), ("current", None) or
    ("skipped", None) for a file that is gone.

    Raises:
        VaultError: it does not open (UnknownKeyError, DecryptionError, FormatError, ...).
    """
    with lock:
        try:
            data = files.read_private(path, fmt.MAX_ENVELOPE_SIZE)
        except FileNotFoundError:
            return "skipped", None
        header, header_bytes, payload = fmt.parse(data)
        old_id = header.key_id.hex()
        if old_id == ring.primary.id:
            return "current", None
        if old_id not in ring:
            raise UnknownKeyError(old_id)
        plaintext = ring.open_parsed(header, header_bytes, payload, kind=kind, name=name)
        sealed = ring.seal(kind=kind, name=name, plaintext=plaintext,
                           created_at=header.created_at, expires_at=header.expires_at)
        # Open what was written before it replaces anything (Tink's rewrap rule).
        if ring.open(sealed, kind=kind, name=name)[1] != plaintext:
            raise VaultError(f"rewrapped {name!r} did not open to the same plaintext")
        files.write_atomic(path, sealed, stem)
        return "rotated", old_id


def rewrap_all(items: list[str], rewrap_one: Callable[[str], tuple[str, str | None]],
               progress: Callable[[int, int], None] | None = None,
               workers: int = 1) -> RotationReport:
    """Run ``rewrap_one`` on every item and count the outcomes; a failure is recorded with
    its error type and message (never a value), and the others go on.

    With ``workers`` > 1, items are rewrapped by that many threads: each item has its own lock
    and its own files, and one item's fsync waits while another's cryptography runs.
    """
    def one(item: str) -> tuple[str, str | None, str | None]:
        try:
            return (*rewrap_one(item), None)
        except VaultError as exc:
            return "failed", None, f"{type(exc).__name__}: {exc.message}"

    counts = {"rotated": 0, "current": 0, "failed": 0, "skipped": 0}
    by_key: dict[str, int] = {}
    failures: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(one, items) if workers > 1 else map(one, items)
        for done, (item, (outcome, old_id, why)) in enumerate(zip(items, results,
                                                                  strict=True), 1):
            if why is not None:
                failures.append((item, why))
            counts[outcome] += 1
            if old_id is not None:
                by_key[old_id] = by_key.get(old_id, 0) + 1
            if progress is not None:
                progress(done, len(items))
    return RotationReport(**counts, by_key=by_key, failures=tuple(failures))
