"""Fuzzing of everything that parses untrusted bytes: envelopes (through the whole read path),
keyfiles, journal records and the codec. Only ``VaultError`` subclasses may escape; nothing
may hang (a deadline per example) or allocate without bound (a memory-capped subprocess).

An atheris harness for longer, coverage-guided runs lives in fuzz/ (outside CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vault
from tests.hygiene import CANARY_PASSPHRASE
from vault import codec
from vault._crypto import kdf
from vault._store.entries import name_stem
from vault._store.journal import Journal
from vault.errors import VaultError
from vault.keysources import PassphraseKeySource
from vault.keysources import _keyfile as kf

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=300, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=30)


@pytest.fixture
def victim(make_vault: Callable[..., vault.Vault]) -> tuple[vault.Vault, bytes]:
    """A vault with one valid entry 'x'; returns it and the entry's bytes."""
    v = make_vault(ttl=3600)
    v.put("x", {"token": "t", "key": os.urandom(32), "n": [1, 2, 3]})
    return v, (v.directory / f"{name_stem('x')}.cve").read_bytes()


def plant(v: vault.Vault, data: bytes) -> None:
    """Replace entry 'x''s file with ``data`` (mode 0600, as an attacker with write access)."""
    path = v.directory / f"{name_stem('x')}.cve"
    path.write_bytes(data)
    path.chmod(0o600)


def only_vault_errors(action: Callable[[], object]) -> None:
    """Run ``action``; it may return or raise a VaultError, nothing else."""
    with contextlib.suppress(VaultError):
        action()


@FUZZ
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_as_an_entry(victim: tuple[vault.Vault, bytes], data: bytes) -> None:
    """Any bytes in an entry's place make get() return or raise a VaultError."""
    v, _ = victim
    plant(v, data)
    only_vault_errors(lambda: v.get("x"))
    only_vault_errors(v.names)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                      max_size=8),
       cut=st.integers(-40, 40))
def test_mutated_envelope(victim: tuple[vault.Vault, bytes], edits: list[tuple[int, int]],
                          cut: int) -> None:
    """A valid envelope with bytes changed and its length changed never opens wrongly and
    only raises VaultErrors."""
    v, good = victim
    data = bytearray(good)
    for position, value in edits:
        data[position % len(data)] = value
    data = data[:cut] if cut < 0 else data + bytes(cut)
    plant(v, bytes(data))
    if bytes(data) != good:
        with pytest.raises(VaultError):
            v.get("x")


@pytest.fixture
def keyfile_doc(tmp_path: Path) -> dict[str, Any]:
    """A valid keyfile document (cheap KDF) as parsed JSON."""
    source = PassphraseKeySource(tmp_path / "k", CANARY_PASSPHRASE, profile="test")
    (tmp_path / "k").mkdir(mode=0o700)
    source.create(vault.Key.generate())
    doc: dict[str, Any] = json.loads((tmp_path / "k" / kf.KEYFILE_NAME).read_bytes())
    return doc


@FUZZ
@given(data=st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_keyfiles(data: bytes) -> None:
    """Any bytes or JSON parse as a keyfile or raise a VaultError."""
    only_vault_errors(lambda: kf.parse(data, "keyfile"))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


@FUZZ
@given(choice=st.integers(0, 10**6), replacement=json_values)
def test_mutated_keyfile(keyfile_doc: dict[str, Any], choice: int, replacement: Any) -> None:
    """A valid keyfile with any one field replaced by any JSON value is parsed or refused with
    a VaultError; if it parses, unwrapping either works or fails with a VaultError."""
    paths = _paths(keyfile_doc)[1:]
    path = paths[choice % len(paths)]
    doc = json.loads(json.dumps(keyfile_doc))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    data = json.dumps(doc).encode()
    try:
        parsed = kf.parse(data, "keyfile")
    except VaultError:
        return
    kek = kdf.derive(CANARY_PASSPHRASE, parsed.salt, parsed.params)
    only_vault_errors(lambda: kf.unwrap_all(parsed, kek, "keyfile"))


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_journal_records(make_vault: Callable[..., vault.Vault], data: bytes) -> None:
    """Any bytes in a journal record's place are read or refused with a VaultError."""
    v = make_vault("journal")
    journal = Journal(v)
    record_id = journal.append_save("x", {"v": 1})
    path = journal.directory / f"{record_id}.cvj"
    path.write_bytes(data)
    path.chmod(0o600)
    only_vault_errors(lambda: journal.read(record_id))


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=300),
       dialect=st.sampled_from(["tagged", "node"]))
def test_arbitrary_codec_input(data: bytes | str, dialect: str) -> None:
    """codec.loads of any bytes or text returns or raises a SerializationError."""
    only_vault_errors(lambda: codec.loads(data, dialect))


@pytest.mark.parametrize("document", [
    b"[" * 200_000, b'{"a":' * 100_000, b"[" * 600 + b"]" * 600,
    b'{"$b":' * 50_000, b'"' + b"\\u0000" * 100_000 + b'"',
])
@pytest.mark.parametrize("dialect", ["tagged", "node"])
def test_deep_and_huge_json_is_refused_quickly(document: bytes, dialect: str) -> None:
    """Deeply nested or huge documents are refused with SerializationError, not a crash."""
    only_vault_errors(lambda: codec.loads(document, dialect))
    with pytest.raises(vault.SerializationError):
        codec.loads(document + b" " * 10, dialect, max_size=len(document))


HOSTILE = r"""
import json, os, resource, struct, sys
resource.setrlimit(resource.RLIMIT_AS, (768 * 1024 * 1024, 768 * 1024 * 1024))
import vault
from vault import codec
from vault._crypto import format as fmt
from vault.keysources import _keyfile as kf
from vault.errors import VaultError
from vault._store.entries import name_stem
d = sys.argv[1]  # the test's tmp_path: nothing is left behind in /tmp
v = vault.Vault(os.path.join(d, "v"), keys=vault.KeyRing([vault.Key.generate()]))
v.put("x", 1)
path = os.path.join(d, "v", name_stem("x") + ".cve")
good = open(path, "rb").read()
# a header that claims a 16 MiB payload on a file of a few bytes, and one that claims 4 GiB
for length in (fmt.MAX_PAYLOAD_LENGTH, 2**32 - 1):
    open(path, "wb").write(good[:106] + struct.pack(">I", length) + good[110:])
    try: v.get("x")
    except VaultError: pass
# a keyfile whose KDF parameters ask Argon2id for 1 TiB of memory and a million passes
from vault.keysources import PassphraseKeySource
kd = os.path.join(d, "k")
os.mkdir(kd, 0o700)
PassphraseKeySource(kd, "pw", profile="test").create(vault.Key.generate())
doc = json.load(open(os.path.join(kd, kf.KEYFILE_NAME)))
doc["kdf"]["params"] = {"time_cost": 10**6, "memory_cost_kib": 2**30, "parallelism": 16}
open(os.path.join(kd, kf.KEYFILE_NAME), "w").write(json.dumps(doc))
try:
    PassphraseKeySource(kd, "pw").load()
    sys.exit("a hostile keyfile loaded")
except VaultError: pass
# nesting far past the cap, and a 300 MB document under a 1 MiB size limit
for data in (b"[" * 5_000_000, b"[" + b"1," * 150_000_000 + b"1]"):
    try: codec.loads(data, max_size=1 << 20)
    except VaultError: pass
print("bounded")
"""


def test_hostile_inputs_stay_within_a_memory_cap(tmp_path: Path) -> None:
    """Under a 768 MiB address-space cap, hostile sizes and KDF parameters are refused without
    allocating what they ask for."""
    result = subprocess.run([sys.executable, "-c", HOSTILE, str(tmp_path)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "bounded"
