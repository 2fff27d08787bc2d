"""Run the installed ``credseal`` as a user would, and check its output for secrets.

The :class:`Cli` runner keeps every stdout and stderr and, at the end of each test (the ``cli``
fixture in tests/fixtures.py), scans them for every secret the test knows (key material as raw
bytes, hex, base64 and base64url; passphrases; plaintext values), and hands them to the
suite-wide scan. The only secret allowed in any output is a ``CREDSEAL_KEYS=...`` line printed on
purpose (``init`` and ``rotate`` for the env source), which tests add to ``allowed``.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import vault
from tests.hygiene import record, secret

BIN = Path(sys.executable).parent / "credseal"
PASSPHRASE = "cli test passphrase 0c5d7e"
NEW_PASSPHRASE = "cli new passphrase 8f21aa"
PLAINTEXT = "cli-canary-plaintext-3e9b51"
SECRET_LOOKING = "cv1:0123456789abcdef:NOT-A-KEY-but-looks-secret-4f7a2d"
KEY_LINE = re.compile(r"CREDSEAL_KEYS=(cv1:[0-9a-f]{16}:[A-Za-z0-9_-]{43})")
for _phrase, _what in ((PASSPHRASE, "cli passphrase"), (NEW_PASSPHRASE, "cli new passphrase"),
                       (PLAINTEXT, "cli plaintext"), (SECRET_LOOKING, "secret-looking value")):
    secret(_phrase, _what)


def material(key: vault.Key) -> bytes:
    """The raw 32 bytes of a key (tests only: to look for them in output)."""
    return base64.urlsafe_b64decode(key.to_text().split(":")[2] + "=")


@dataclass
class Cli:
    """Runs ``credseal`` with a clean environment in a temp directory; remembers outputs."""

    home: Path
    base_env: dict[str, str]
    outputs: list[tuple[str, str]] = field(default_factory=list)
    needles: dict[str, str] = field(default_factory=dict)
    allowed: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        """The vault directory (CREDSEAL_DIR)."""
        return self.home / "vault"

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            **variables: str) -> subprocess.CompletedProcess[str]:
        """Run ``credseal *args`` with CREDSEAL_<NAME>=value for each keyword; stdin ``input``."""
        environ = {**(env or self.base_env), "CREDSEAL_DIR": str(self.dir)}
        environ.update({f"CREDSEAL_{name.upper()}": value for name, value in variables.items()})
        result = subprocess.run([str(BIN), *args], input=input if input is not None else "",
                                capture_output=True, text=True, env=environ, cwd=self.home,
                                timeout=60)
        where = f"credseal {' '.join(args)}"
        self.outputs += [(result.stdout, f"stdout of {where}"), (result.stderr,
                                                                  f"stderr of {where}")]
        return result

    def init_env(self) -> str:
        """``credseal init`` with the env source; returns the printed (allowed) key text."""
        result = self.run("init", key_source="env")
        assert result.returncode == 0, result.stderr
        match = KEY_LINE.fullmatch(result.stdout.strip())
        assert match is not None
        self.allowed.append(match.group(1))
        self.add_key(vault.Key.from_text(match.group(1)))
        return match.group(1)

    def add_key(self, key: vault.Key) -> None:
        """Remember a key whose material must not appear in any output."""
        raw = material(key)
        forms = {"hex": raw.hex(), "HEX": raw.hex().upper(),
                 "base64": base64.b64encode(raw).decode().rstrip("="),
                 "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
                 "raw": repr(raw)[2:-1]}
        for form, text in forms.items():
            self.needles[text] = f"key {key.id} ({form})"
            self.needles[text[:24]] = f"key {key.id} ({form}, first 24 characters)"

    def add_ring(self, ring: vault.KeyRing) -> None:
        """Remember every key of a ring."""
        for key in ring:
            self.add_key(key)

    def leaks(self) -> list[str]:
        """Every secret found in any output (after cutting out the allowed key texts)."""
        needles = {PASSPHRASE: "passphrase", NEW_PASSPHRASE: "new passphrase",
                   PLAINTEXT: "plaintext", SECRET_LOOKING: "secret-looking value", **self.needles}
        found = []
        for text, where in self.outputs:
            for allowed in self.allowed:
                text = text.replace(allowed, "<allowed>")
            found += [f"{what} in {where}" for needle, what in needles.items() if needle in text]
        return found


def cli_runner(tmp_path: Path, environ: dict[str, str]) -> Iterator[Cli]:
    """A :class:`Cli` in an empty temp directory with no CREDSEAL_* variables; at teardown, no
    secret it knows may appear in any output of the test."""
    env = {k: v for k, v in environ.items() if not k.upper().startswith("CREDSEAL_")}
    env["CREDSEAL_KDF_PROFILE"] = "test"  # the cheap Argon2id profile: the tests are of the CLI
    runner = Cli(tmp_path, env)
    yield runner
    for text, where in runner.outputs:  # for the suite-wide scan too, once allowed is complete
        record(text, where, allowed=runner.allowed)
    assert runner.leaks() == []


def fill(directory: Path, ring: vault.KeyRing | vault.keysources.KeySource, *names: str) -> None:
    """Put an entry holding PLAINTEXT under each name, as a service would."""
    v = vault.Vault(directory, keys=ring)
    for name in names:
        v.put(name, {"password": PLAINTEXT, "name": name})
