"""Tests of the secret-hygiene scanner itself (tests/hygiene.py): it must find every leak."""

from __future__ import annotations

import base64
import logging

import pytest

import vault
from tests import hygiene


@pytest.fixture
def store() -> hygiene.Hygiene:
    """A private scanner holding one known key."""
    h = hygiene.Hygiene()
    h.add_secret(bytes(range(32)), "key under test")
    return h


RAW = bytes(range(32))


@pytest.mark.parametrize("leak", [
    RAW.hex(), RAW.hex().upper(), base64.b64encode(RAW).decode(),
    base64.urlsafe_b64encode(RAW).decode().rstrip("="), repr(RAW),
    f"cv1:0011223344556677:{base64.urlsafe_b64encode(RAW).decode().rstrip('=')}",
    f"prefix{RAW.hex()}suffix", hygiene.CANARY_VALUE, hygiene.CANARY_PASSPHRASE,
])
def test_every_encoding_is_found(store: hygiene.Hygiene, leak: str) -> None:
    """A key in hex, base64, base64url, raw repr or key text, or a canary, is reported."""
    store.add(f"some message with {leak} inside", "a log record")
    assert store.scan() and all("a log record" in line for line in store.scan())


def test_clean_texts_pass(store: hygiene.Hygiene) -> None:
    """Ids, other random data and ordinary messages are not reported."""
    store.add(f"entry sealed under key {vault.Key.from_bytes(RAW).id}", "an error")
    store.add(bytes(range(1, 33)).hex(), "a log record")
    assert store.scan() == []


def test_report_never_contains_the_secret(store: hygiene.Hygiene) -> None:
    """The leak report names where and what kind, never the secret itself."""
    store.add(RAW.hex(), "stdout of a command")
    report = "\n".join(store.scan())
    assert RAW.hex() not in report and "stdout of a command" in report


def test_allowed_key_text_is_cut_out() -> None:
    """Output handed to record() with an allowed key text does not count that text."""
    key = vault.Key.generate()
    hygiene.record(f"CREDSEAL_KEYS={key.to_text()}\n", "init stdout", allowed=[key.to_text()])
    assert "CREDSEAL_KEYS=<allowed>\n" in hygiene._STORE.texts


def test_session_collectors_are_installed() -> None:
    """Keys created, VaultErrors raised and log records emitted reach the session scanner."""
    key = vault.Key.generate()
    assert key._material in hygiene._STORE.secrets
    vault.FormatError("a message for the hygiene test", hint="a hint")
    assert any("a message for the hygiene test" in t for t in hygiene._STORE.texts)
    logging.getLogger("vault.test").debug("debug record for the hygiene test")
    assert any("debug record for the hygiene test" in t for t in hygiene._STORE.texts)
