"""The ``credvault`` command line: a thin argparse layer over ``vault.admin``.

Only this module prints, prompts or exits. Errors print as ``credvault: error: ...`` plus
``credvault: hint: ...`` on stderr; a traceback only with ``--debug``. Secrets never come from
the command line: a passphrase comes from ``VAULT_PASSPHRASE``, else a prompt on a terminal,
else one line of stdin when it is piped.

Exit codes:
    0    success
    1    the command ran and found problems (verify: an entry failed; status, diagnose:
         a problem was reported), or an unexpected internal error
    2    usage or configuration error (bad arguments, a VAULT_* setting missing or invalid)
    3    key source error (no keyring backend, locked keyring, missing or wrong passphrase,
         bad VAULT_KEYS, damaged keyfile)
    4    vault error (no such entry, insecure or unreadable file or directory, I/O error)
    5    nothing to do (rotate: the primary key is not due, or every entry is current)
    75   another rotation is running (rotate: try again later)
    130  interrupted

Adding a command is one function decorated with :func:`command`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import vault
from vault import admin, diagnose
from vault.errors import ConfigurationError, KeySourceError, VaultError
from vault.settings import VaultSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_KEYS = 3
EXIT_VAULT = 4
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Keep service credentials encrypted at rest, serve them through database outages,
and rotate keys without losing a byte. Settings come from VAULT_* variables (or .env):
VAULT_DIR, VAULT_KEY_SOURCE (env | keyring | passphrase), VAULT_KEYS, VAULT_PASSPHRASE,
VAULT_KEYRING_SERVICE, VAULT_TTL, VAULT_KDF_PROFILE. See docs/keys.md.
"""
EPILOG = """\
examples:
  VAULT_DIR=/var/lib/app/vault VAULT_KEY_SOURCE=keyring credvault init
  credvault status --json
  credvault verify

exit codes:
  0 ok; 1 problems found (verify, status, diagnose) or internal error;
  2 usage or configuration error; 3 key source error; 4 vault error;
  5 nothing to do (rotate); 75 another rotation is running; 130 interrupted
"""

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
        """Print an informational line for the human (stderr)."""
        print(f"credvault: {line}", file=self.stderr)

    def emit_json(self, data: dict[str, Any]) -> None:
        """Print ``data`` as one JSON document (stdout)."""
        print(json.dumps(data, indent=2, sort_keys=True), file=self.stdout)

    def read_secret(self, prompt: str, *, confirm: bool = False) -> str:
        """Ask on a terminal (twice if ``confirm``); read one line of piped stdin otherwise."""
        if self.stdin.isatty():
            first = getpass.getpass(prompt, stream=self.stderr)
            if confirm and getpass.getpass("Repeat it: ", stream=self.stderr) != first:
                raise ConfigurationError("the two passphrases differ", hint="try again")
            return first
        line = self.stdin.readline()
        if not line:
            raise KeySourceError("a passphrase is needed: VAULT_PASSPHRASE is not set and stdin "
                                 "is empty", hint="set VAULT_PASSPHRASE, pipe the passphrase "
                                                  "on stdin, or run on a terminal")
        return line.removesuffix("\n").removesuffix("\r")

    def passphrase(self, settings: VaultSettings) -> str | None:
        """The passphrase for the passphrase key source (``None`` for the other sources)."""
        if settings.key_source != "passphrase":
            return None
        if settings.passphrase is not None:
            return settings.passphrase.get_secret_value()
        return self.read_secret("Passphrase: ")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _time(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- commands ---------------------------------------------------------------------------------

@command("init", help="create the vault directory and its first key", epilog="""\
examples:
  # environment: prints VAULT_KEYS=... once; store it in your secret manager
  VAULT_DIR=/var/lib/app/vault VAULT_KEY_SOURCE=env credvault init
  # OS keyring (Secret Service, Keychain, Credential Locker)
  VAULT_DIR=/var/lib/app/vault VAULT_KEY_SOURCE=keyring credvault init
  # passphrase keyfile: asks for a new passphrase (or reads VAULT_PASSPHRASE / stdin)
  VAULT_DIR=/var/lib/app/vault VAULT_KEY_SOURCE=passphrase credvault init
""")
def cmd_init(args: argparse.Namespace, con: Console) -> int:
    settings = con.settings()
    passphrase = None
    if settings.key_source == "passphrase" and settings.passphrase is None:
        passphrase = con.read_secret("New passphrase: ", confirm=True)
    result = admin.init_vault(settings, passphrase=passphrase)
    if result.key_text is not None:
        con.note("warning: the line on stdout is the vault's secret key. Store it in your "
                 "secret manager now: it is stored nowhere else and never shown again.")
        con.out(f"VAULT_KEYS={result.key_text}")
        con.note(f"created {result.directory} with key {result.key_id}")
    else:
        con.out(f"created {result.directory}; key {result.key_id} is active in the "
                f"{result.source} key source")
    return EXIT_OK


@command("status", json=True, help="key ids and states, entries per key, ages, problems",
         epilog="""\
Needs no key: computed from entry headers read without decryption (unverified).

examples:
  credvault status
  credvault status --json | jq '.keys'
""")
def cmd_status(args: argparse.Namespace, con: Console) -> int:
    report = admin.status(con.settings())
    if args.json:
        con.emit_json({**report.to_dict(), "ok": report.ok})
        return EXIT_OK if report.ok else EXIT_FAILED
    con.out(f"vault       {report.directory}")
    con.out(f"entries     {report.entries} (oldest {_age(report.oldest_age_seconds)}, newest "
            f"{_age(report.newest_age_seconds)})")
    con.out(f"expired     {report.expired_unverified} (from unverified headers; "
            "`credvault verify` authenticates)")
    con.out(f"key source  {report.key_source or 'error: ' + str(report.key_source_error)}")
    if report.kdf_profile:
        con.out(f"kdf         {report.kdf_profile}")
    for key in report.keys:
        con.out(f"key         {key.id}  {key.state or 'unknown to the key source':<13}  "
                f"created {_time(key.created_at)}  entries {key.entries}")
    for problem in report.problems:
        con.out(f"problem     {problem}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the entry name")


@command("inspect", json=True, arguments=_name_argument,
         help="header fields of one entry (unverified); never the value", epilog="""\
examples:
  credvault inspect db/password
  credvault inspect db/password --json
""")
def cmd_inspect(args: argparse.Namespace, con: Console) -> int:
    report = admin.inspect_entry(con.settings(), args.name)
    if args.json:
        con.emit_json(report.to_dict())
        return EXIT_OK
    for label, value in (("name", report.name), ("file", report.file),
                         ("key id", report.key_id), ("created at", _time(report.created_at)),
                         ("expires at", _time(report.expires_at)),
                         ("valid until", _time(report.valid_until)),
                         ("size", f"{report.size} bytes"),
                         ("expired", "yes" if report.expired_unverified else "no")):
        con.out(f"{label:<12}{value}")
    con.out("(header fields read without a key: unverified; `credvault verify` "
            "authenticates them)")
    return EXIT_OK


@command("verify", json=True, help="open every entry: ok, expired or failed", epilog="""\
Exit code 1 if any entry failed to open. Needs the keys (and the passphrase for a keyfile).

examples:
  credvault verify
  credvault verify --json < passphrase.txt    # piped stdin: the passphrase, one line
""")
def cmd_verify(args: argparse.Namespace, con: Console) -> int:
    settings = con.settings()
    report = admin.verify(settings, passphrase=con.passphrase(settings))
    failed = report.count("failed")
    if args.json:
        con.emit_json({**report.to_dict(), "summary": {
            status: report.count(status) for status in ("ok", "expired", "failed")}})
    else:
        for check in report.checks:
            con.out(f"{check.status:<8} {check.name}" + (f": {check.detail}" if check.detail
                                                         else ""))
        con.out(f"{len(report.checks)} entries: {report.count('ok')} ok, "
                f"{report.count('expired')} expired, {failed} failed ({report.seconds:.2f} s)")
    return EXIT_FAILED if failed else EXIT_OK


@command("diagnose", json=True, help="check settings, vault directory, keyring backend",
         epilog="""\
Shows which keyring backend was found, whether the settings are valid and where the vault
lives; never a key. Exit code 1 if a check is an error.

examples:
  credvault diagnose
  credvault diagnose --json
""")
def cmd_diagnose(args: argparse.Namespace, con: Console) -> int:
    report = diagnose.diagnose(con.overrides())
    if args.json:
        con.emit_json({**report.to_dict(), "ok": report.ok, "version": vault.__version__})
    else:
        con.out(f"credvault {vault.__version__} (Python {sys.version.split()[0]})")
        for check in report.checks:
            con.out(f"{check.level:<8} {check.name}: {check.detail}")
            if check.hint:
                con.out(f"{'':<8} hint: {check.hint}")
    return EXIT_OK if report.ok else EXIT_FAILED


@command("passwd", help="change the keyfile's passphrase (rewraps the keyfile only)", epilog="""\
Asks for the current passphrase (or uses VAULT_PASSPHRASE), then the new one twice. With
piped stdin: one line per passphrase asked. Entries are untouched. Afterwards, update
VAULT_PASSPHRASE wherever services read it, and restart them.

examples:
  credvault passwd
  printf '%s\\n%s\\n' "$OLD" "$NEW" | credvault passwd
""")
def cmd_passwd(args: argparse.Namespace, con: Console) -> int:
    settings = con.settings()
    if settings.require_key_source() != "passphrase":
        raise ConfigurationError("passwd applies to VAULT_KEY_SOURCE=passphrase only")
    current = con.passphrase(settings) or ""
    new = con.read_secret("New passphrase: ", confirm=True)
    admin.change_passphrase(settings, current=current, new=new)
    con.out(f"passphrase changed: {settings.require_dir()}/keyfile.json rewrapped with a new "
            "salt; entries untouched")
    con.note("update VAULT_PASSPHRASE wherever services read it, then restart them")
    return EXIT_OK


# The maintenance commands (rotate, retire, prune, migrate, export) register themselves too.
from vault import cli_maintenance  # noqa: E402, F401

# ---- parser and main ------------------------------------------------------------------------

def _common() -> argparse.ArgumentParser:
    # A new parent per parser: argparse shares the action objects of a parent with its children.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", metavar="PATH", default=argparse.SUPPRESS,
                        help="the vault directory (overrides VAULT_DIR)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    return common


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``credvault`` (global options work before or after the
    command: ``credvault --dir D status`` and ``credvault status --dir D``)."""
    parser = argparse.ArgumentParser(
        prog="credvault", description=DESCRIPTION, epilog=EPILOG, parents=[_common()],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"credvault {vault.__version__}")
    parser.set_defaults(dir=None, debug=False, run=None, json=False)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for cmd in COMMANDS:
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help,
                                    epilog=cmd.epilog, parents=[_common()],
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        if cmd.arguments is not None:
            cmd.arguments(sub)
        if cmd.json:
            sub.add_argument("--json", action="store_true", help="print one JSON document")
        sub.set_defaults(run=cmd.run)
    return parser


def _describe(exc: Exception) -> tuple[str, str | None, int]:
    """(message, hint, exit code) of an error; unexpected ones show only their type."""
    if isinstance(exc, ConfigurationError):
        return exc.message, exc.hint, EXIT_USAGE
    if isinstance(exc, KeySourceError):
        return exc.message, exc.hint, EXIT_KEYS
    if isinstance(exc, VaultError):
        return exc.message, exc.hint, EXIT_VAULT
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}", None, EXIT_VAULT
    return (f"internal error ({type(exc).__name__})",
            "run again with --debug for a traceback, and report it", EXIT_FAILED)


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is None:
        parser.print_help(stderr)
        return EXIT_USAGE
    try:
        code: int = args.run(args, Console(args, stdin, stdout, stderr))
        return code
    except KeyboardInterrupt:
        print("credvault: interrupted", file=stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc(file=stderr)
        message, hint, code = _describe(exc)
        print(f"credvault: error: {message}", file=stderr)
        if hint:
            print(f"credvault: hint: {hint}", file=stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
