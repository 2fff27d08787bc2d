"""The CLI's shared parts: exit codes, the command registry, the console, formatting helpers.

Every command module registers its commands with :func:`command`; ``vault.cli._app`` builds
the parser from the registry and maps errors to exit codes. Only ``vault.cli`` prints,
prompts or exits.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

from vault import _files as files
from vault._store.store import Vault
from vault.cache import shared_target
from vault.config import (
    VaultSettings,
    open_primary,
    open_shared,
    parse_duration,
    source_from_settings,
)
from vault.errors import ConfigurationError, KeySourceError
from vault.keysources import KeySource
from vault.ops import bind_directory
from vault.sources import TableTarget

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_KEYS = 3
EXIT_VAULT = 4
EXIT_NOTHING_TO_DO = 5
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130
MIN_PASSPHRASE = 12  # characters; shorter ones are refused unless allowed
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports it

DESCRIPTION = """\
Keep service credentials encrypted at rest, serve them through database outages,
and rotate keys without losing a byte. Settings come from CREDSEAL_* variables (or .env):
CREDSEAL_DIR, CREDSEAL_KEY_SOURCE (env | keyring | passphrase), CREDSEAL_KEYS,
CREDSEAL_PASSPHRASE, CREDSEAL_KEYRING_SERVICE, CREDSEAL_TTL, CREDSEAL_KDF_PROFILE
(keys.md in the documentation explains them; where it is: see the end of this help).
"""
EPILOG = """\
examples:
  CREDSEAL_DIR=/var/lib/app/vault CREDSEAL_KEY_SOURCE=keyring credseal init
  credseal status --json
  credseal verify

exit codes:
  0 ok; 1 problems found (verify, status, diagnose) or internal error;
  2 usage or configuration error; 3 key source error; 4 vault error;
  5 nothing to do (rotate); 75 another rotation is running; 130 interrupted

documentation: {docs}
  README.md (start here), keys.md (key sources, settings), operations.md (outages,
  rotation runbooks), migration.md, upgrading.md (from credvault), security.md, format.md
"""


def docs_dir() -> str:
    """Where the documentation is: ``share/doc/credseal`` of the installed distribution (its
    data files, wherever the install scheme put them: a venv, ``--user``, ``/usr/local``), else,
    running from a source checkout, its ``docs`` directory."""
    try:
        for item in importlib.metadata.distribution("credseal").files or ():
            if item.name == "keys.md" and "share/doc/credseal" in item.as_posix():
                return os.path.normpath(os.path.dirname(item.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "docs")
    if os.path.isfile(os.path.join(checkout, "keys.md")):
        return checkout + " (and README.md beside it)"
    return os.path.join(sys.prefix, "share", "doc", "credseal")

Runner = Callable[[argparse.Namespace, "Console"], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, help texts, extra arguments and the function that runs it."""

    name: str
    help: str
    epilog: str
    run: Runner
    arguments: Callable[[argparse.ArgumentParser], None] | None
    json: bool


COMMANDS: list[Command] = []


def command(name: str, *, help: str, epilog: str, json: bool = False,
            arguments: Callable[[argparse.ArgumentParser], None] | None = None
            ) -> Callable[[Runner], Runner]:
    """Register the decorated ``run(args, console) -> exit code`` as subcommand ``name``."""
    def register(run: Runner) -> Runner:
        COMMANDS.append(Command(name, help, epilog, run, arguments, json))
        return run
    return register


class Console:
    """Where a command's output goes, where secrets are read from, and its settings."""

    def __init__(self, args: argparse.Namespace, stdin: TextIO, stdout: TextIO,
                 stderr: TextIO) -> None:
        self.args, self.stdin, self.stdout, self.stderr = args, stdin, stdout, stderr

    def overrides(self) -> dict[str, Any]:
        """Settings given as options (``--dir``), which win over the environment."""
        return {"dir": self.args.dir} if self.args.dir else {}

    def settings(self) -> VaultSettings:
        """Load the settings (environment, ``.env``, options)."""
        return VaultSettings(**self.overrides())

    def out(self, line: str = "") -> None:
        """Print a line of the command's result (stdout)."""
        print(line, file=self.stdout)

    def note(self, line: str) -> None:
        """Print an informational line for the human (stderr); with ``--quiet`` only warnings
        and errors."""
        if getattr(self.args, "quiet", False) and not line.startswith(("warning", "error")):
            return
        print(f"credseal: {line}", file=self.stderr)

    def secret_line(self, line: str, what: str) -> None:
        """Hand over a line holding secret keys (``CREDSEAL_KEYS=...``): into ``--output
        FILE`` when given (created 0600, never over an existing file), else on stdout with a
        warning on stderr naming ``what`` to do with it."""
        output = getattr(self.args, "output", None)
        if output:
            try:
                files.write_new(os.fspath(output), (line + "\n").encode())
            except OSError as exc:  # never lose the key: it exists nowhere else yet
                self.note(f"error: could not write {output} ({exc.strerror or exc}): the keys "
                          "are on stdout instead")
            else:
                self.note(f"wrote the vault's secret keys to {output} (mode 600): {what}")
                return
        self.note(f"warning: the line on stdout holds the vault's secret keys: {what}")
        self.out(line)

    def check_output(self) -> None:
        """Refuse an ``--output`` path that exists, before the command makes any key."""
        output = getattr(self.args, "output", None)
        if not output:
            return
        if os.path.lexists(output):
            raise ConfigurationError(f"{output} exists already: keys are written only to a new "
                                     "file", hint="choose a new --output path (nothing was "
                                     "done)")
        directory = self.settings().dir
        inside = os.path.realpath(os.path.dirname(os.path.abspath(output)))
        if directory is not None and (inside + "/").startswith(
                os.path.realpath(directory) + "/"):
            raise ConfigurationError(f"{output} is inside the vault directory: keys beside the "
                                     "ciphertext protect nothing", hint="write them outside "
                                     "CREDSEAL_DIR (nothing was done)")

    def emit_json(self, data: dict[str, Any]) -> None:
        """Print ``data`` as one JSON document (stdout)."""
        print(json.dumps(data, indent=2, sort_keys=True), file=self.stdout)

    def read_secret(self, prompt: str, *, confirm: bool = False,
                    missing: str | None = None) -> str:
        """Ask on a terminal (twice if ``confirm``); read one line of piped stdin otherwise.
        ``missing`` says what is missing when stdin is empty."""
        if self.stdin.isatty():
            first = getpass.getpass(prompt, stream=self.stderr)
            if confirm and getpass.getpass("Repeat it: ", stream=self.stderr) != first:
                raise ConfigurationError("the two passphrases differ", hint="try again")
            return first
        line = self.stdin.readline()
        if not line:
            raise KeySourceError(missing or "a passphrase is needed: CREDSEAL_PASSPHRASE is not "
                                 "set and stdin is empty",
                                 hint="set CREDSEAL_PASSPHRASE, pipe the passphrase on stdin, or "
                                      "run on a terminal")
        return line.removesuffix("\n").removesuffix("\r")

    def new_passphrase(self, secret: str | None, *, allow_weak: bool,
                       missing: str | None = None) -> str:
        """A new passphrase: ``secret`` if given, else asked twice (or one line of stdin).

        Under ``MIN_PASSPHRASE`` characters it is refused unless ``allow_weak``, except on a
        terminal, where a warning is enough (the operator sees it)."""
        if secret is None:
            secret = self.read_secret("New passphrase: ", confirm=True, missing=missing)
        if len(secret) < MIN_PASSPHRASE and not allow_weak:
            if not self.stdin.isatty():
                raise ConfigurationError(
                    f"the new passphrase has fewer than {MIN_PASSPHRASE} characters: anyone "
                    "who copies the keyfile can guess it offline",
                    hint="use a longer one (four random words), or pass "
                         "--allow-weak-passphrase if you must")
            self.note(f"warning: the new passphrase has fewer than {MIN_PASSPHRASE} characters; "
                      "a longer one (four random words) resists offline guessing far better")
        return secret

    def passphrase(self, settings: VaultSettings) -> str | None:
        """The passphrase for the passphrase key source (``None`` for the other sources)."""
        if settings.key_source != "passphrase":
            return None
        if settings.passphrase is not None:
            return settings.passphrase.get_secret_value()
        return self.read_secret("Passphrase: ")


def age(seconds: float | None) -> str:
    """A short human age: ``-``, ``42s``, ``3.5m``, ``2.0h``, ``1.5d``."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def moment(when: Any) -> str:
    """A UTC datetime as ``YYYY-MM-DDTHH:MM:SSZ`` (``-`` for None)."""
    return "-" if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(text: str) -> timedelta:
    """Parse ``90d``, ``12h``, ``30m``, ``2w`` or ``45s`` (argparse type)."""
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90d, 12h, 30m, 2w")
    return timedelta(seconds=seconds)


def open_keyed(con: Console, *, read_only: bool = False) -> tuple[KeySource, Vault]:
    """The key source and the vault of the settings (the directory must exist: commands
    never create one); ``read_only`` for the commands that only report."""
    settings = con.settings()
    source = source_from_settings(settings, con.passphrase(settings))
    directory = os.fspath(settings.require_dir())
    Vault(directory, read_only=True)  # exists and is private: checked before anything else
    if settings.ttl is None:
        v = Vault(directory, keys=source, read_only=read_only)
    else:
        v = Vault(directory, keys=source, ttl=settings.ttl, read_only=read_only)
    state = bind_directory(v, source, write=not read_only)  # refuses another vault's source
    if settings.ttl is None and state is not None and state.ttl_ms is not None:
        # a vault that is no cache (the keyring backend's) records its own TTL
        v = Vault(directory, keys=source, ttl=state.ttl_ms / 1000, read_only=read_only)
    return source, v


def shared_targets(con: Console, v: Vault,
                   keys: KeySource | None = None) -> tuple[list[Any], Callable[[], None]]:
    """The rewrap targets beyond the directory, and what closes them: the shared tier
    (``CREDSEAL_REDIS_*``) and a sealed primary table (``CREDSEAL_PRIMARY`` with
    ``CREDSEAL_PRIMARY_SEALED``, opened with ``keys``)."""
    settings = con.settings()
    targets: list[Any] = []
    closers: list[Callable[[], None]] = []
    tier = open_shared(settings)
    if tier is not None:
        targets.append(shared_target(tier, v))
        closers.append(tier.close)
    if settings.primary is not None and settings.primary_sealed:
        primary = open_primary(settings, keys=keys)
        targets.append(TableTarget(primary))
        closers.append(getattr(primary, "close", lambda: None))

    def close() -> None:
        for closer in closers:
            closer()

    return targets, close


def progress_bar(con: Console) -> Callable[[str, int, int], None] | None:
    """A progress bar on stderr when it is a terminal (and not ``--quiet``); else nothing."""
    if not con.stderr.isatty() or getattr(con.args, "quiet", False):
        return None

    def draw(what: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        end = "\n" if done >= total else ""
        con.stderr.write(f"\rcredseal: rewrapping {what} [{'#' * filled}{'.' * (width - filled)}]"
                         f" {done}/{total}{end}")
        con.stderr.flush()
    return draw




def output_argument(parser: argparse.ArgumentParser) -> None:
    """``--output FILE``: where a command writes key text instead of stdout."""
    parser.add_argument("--output", metavar="FILE",
                        help="write the CREDSEAL_KEYS line to this new file (mode 600) instead "
                             "of stdout")


def weak_passphrase_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow-weak-passphrase``: accept a new passphrase under ``MIN_PASSPHRASE`` chars."""
    parser.add_argument("--allow-weak-passphrase", action="store_true",
                        help=f"accept a new passphrase shorter than {MIN_PASSPHRASE} characters")
