"""Secret hygiene across the whole test suite (a pytest plugin, registered in conftest.py).

While the suite runs, this plugin collects every text that could leak a secret:
- every log record of any logger, at DEBUG and above (message and traceback);
- every ``VaultError`` message and hint, raised or not;
- the ``repr`` of every ``Key``, ``KeyRing`` and ``Entry`` created;
- the argv of every subprocess the tests start (secrets must never be in argv);
- CLI output that tests hand over with :func:`record` (the CLI tests do).

It also learns every secret: the material of every ``Key`` created in this process, keys and
passphrases that tests declare with :func:`secret`, and canary plaintexts. At the end of the
session each text is scanned for each secret in raw (``repr``), hex, base64 and base64url form;
any hit fails the run, naming where it was found (never the secret). Key texts that ``init``
and ``rotate`` print on purpose for the environment key source are passed as ``allowed``.
"""

from __future__ import annotations

import base64
import logging
import re
import subprocess
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import vault
from vault import Entry, Key, KeyRing
from vault.errors import VaultError

#: Plaintext canaries: tests that want a value checked everywhere use one of these.
CANARY_VALUE = "canary-plaintext-7d1f3b9a5e2c"
CANARY_PASSPHRASE = "canary passphrase 4c8e1a7f correct horse"
_RUN = re.compile(r"[A-Za-z0-9+/=_-]{40,}")
_PREFIX = 40


class _Collector(logging.Handler):
    def __init__(self, store: Hygiene) -> None:
        super().__init__(level=logging.DEBUG)
        self.store = store

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is the logger's problem, not a leak
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.store.add(text, f"log record of {record.name!r} ({record.levelname})")


class Hygiene:
    """The texts seen and the secrets known during the session."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.secrets: dict[bytes, str] = {}
        self.phrases: dict[str, str] = {CANARY_VALUE: "canary value",
                                        CANARY_PASSPHRASE: "canary passphrase"}

    def add(self, text: str, where: str) -> None:
        """Remember ``text`` (first place it was seen)."""
        if text:
            self.texts.setdefault(text, where)

    def add_secret(self, raw: bytes, what: str) -> None:
        """Remember secret bytes (a key's material)."""
        self.secrets.setdefault(bytes(raw), what)

    def needles(self) -> Iterator[tuple[str, str]]:
        """Every encoding of every secret, with a description that shows no secret."""
        for raw, what in self.secrets.items():
            yield raw.hex(), f"{what} (hex)"
            yield raw.hex().upper(), f"{what} (HEX)"
            yield base64.b64encode(raw).decode().rstrip("="), f"{what} (base64)"
            yield base64.urlsafe_b64encode(raw).decode().rstrip("="), f"{what} (base64url)"
            yield repr(raw)[2:-1], f"{what} (raw bytes)"
        for phrase, what in self.phrases.items():
            yield phrase, what

    def scan(self) -> list[str]:
        """Return one line per leak found: where, and what kind of secret."""
        token_needles: dict[str, list[tuple[str, str]]] = {}
        plain_needles: list[tuple[str, str]] = []
        for needle, what in self.needles():
            if len(needle) >= _PREFIX and _RUN.fullmatch(needle):
                token_needles.setdefault(needle[:_PREFIX], []).append((needle, what))
            else:
                plain_needles.append((needle, what))
        leaks = []
        for text, where in self.texts.items():
            for run in _RUN.findall(text):
                for i in range(len(run) - _PREFIX + 1):
                    for needle, what in token_needles.get(run[i:i + _PREFIX], ()):
                        if run.startswith(needle, i):
                            leaks.append(f"{what} in {where}")
            leaks.extend(f"{what} in {where}" for needle, what in plain_needles
                         if needle in text)
        return sorted(set(leaks))


_STORE = Hygiene()


def record(text: str, where: str, allowed: Iterable[str] = ()) -> None:
    """Hand over captured output (e.g. a CLI's stdout) for scanning; ``allowed`` texts (key
    texts printed on purpose) are cut out first."""
    for item in allowed:
        text = text.replace(item, "<allowed>")
    _STORE.add(text, where)


def secret(value: str | bytes, what: str) -> None:
    """Declare a secret the library never created itself (a passphrase, an imported key)."""
    if isinstance(value, bytes):
        _STORE.add_secret(value, what)
    else:
        _STORE.phrases.setdefault(value, what)


def _wrap(cls: Any, name: str, after: Any) -> None:
    original = getattr(cls, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        after(result, *args)
        return result

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, name, wrapper)


def _on_key(key: Key, *args: Any) -> None:
    _STORE.add_secret(key._material, f"key {key.id}")
    _STORE.add(repr(key), "repr(Key)")


def _on_init(_result: None, obj: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(obj, VaultError):
        _STORE.add(f"{obj.message}\n{obj.hint or ''}", f"{type(obj).__name__} message")
    else:
        _STORE.add(repr(obj), f"repr({type(obj).__name__})")


def _on_popen(_result: None, popen: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
    argv = args if isinstance(args, str) else " ".join(map(str, args))
    _STORE.add(argv, "a subprocess's argv")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Start collecting before any test module is imported."""
    _wrap(Key, "_from_material", lambda key, *a: _on_key(key))
    for cls in (VaultError, KeyRing, Entry):
        _wrap(cls, "__init__", lambda result, obj, *a, **k: _on_init(result, obj))
    _wrap(subprocess.Popen, "__init__", _on_popen)
    handler = _Collector(_STORE)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    config.stash[_HANDLER] = handler


_HANDLER = pytest.StashKey[_Collector]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan everything collected; a leak fails the run."""
    leaks = _STORE.scan()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    summary = (f"secret hygiene: {len(_STORE.texts)} texts scanned for "
               f"{len(_STORE.secrets)} keys and {len(_STORE.phrases)} phrases: "
               f"{len(leaks)} leaks")
    if reporter is not None:
        reporter.write_line(summary)
        for leak in leaks[:50]:
            reporter.write_line(f"  LEAK: {leak}", red=True)
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


__all__ = ["CANARY_PASSPHRASE", "CANARY_VALUE", "record", "secret", "vault"]
