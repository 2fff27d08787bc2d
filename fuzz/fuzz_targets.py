"""atheris harness for credseal's parsers (see fuzz/README.md); not run in CI.

Usage: python fuzz/fuzz_targets.py {envelope|keyfile|codec} [libFuzzer options]
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports():
    import vault
    from vault import codec
    from vault._store.entries import name_stem
    from vault.errors import VaultError
    from vault.keysources import _keyfile as kf

_DIR = tempfile.mkdtemp(prefix="credseal-fuzz-")
_VAULT = vault.Vault(os.path.join(_DIR, "v"), keys=vault.KeyRing([vault.Key.generate()]))
_VAULT.put("x", {"seed": b"\x00" * 32})
_ENTRY = os.path.join(_DIR, "v", name_stem("x") + ".cve")


def envelope(data: bytes) -> None:
    """Plant ``data`` as entry 'x' and read it through the whole open path."""
    fd = os.open(_ENTRY + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)
    os.replace(_ENTRY + ".new", _ENTRY)
    with contextlib.suppress(VaultError):
        _VAULT.get("x")


def keyfile(data: bytes) -> None:
    """Parse ``data`` as a keyfile."""
    with contextlib.suppress(VaultError):
        kf.parse(data, "keyfile")


def codec_loads(data: bytes) -> None:
    """Decode ``data`` in both dialects."""
    for dialect in ("tagged", "node"):
        with contextlib.suppress(VaultError):
            codec.loads(data, dialect, max_size=1 << 20)


TARGETS = {"envelope": envelope, "keyfile": keyfile, "codec": codec_loads}

if __name__ == "__main__":
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
