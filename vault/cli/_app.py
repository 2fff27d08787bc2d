"""The ``credseal`` command line: a thin argparse layer over ``vault.ops``.

Only this module prints, prompts or exits. Errors print as ``credseal: error: ...`` plus
``credseal: hint: ...`` on stderr (with ``--json``: one JSON object ``{"error": ..., "hint":
... or null, "exit_code": ...}`` instead); a traceback only with ``--debug``. Secrets never
come from the command line: a passphrase comes from ``CREDSEAL_PASSPHRASE``, else a prompt on
a terminal, else one line of stdin when it is piped.

Exit codes:
    0    success
    1    the command ran and found problems (verify: an entry failed; status, diagnose:
         a problem was reported), or an unexpected internal error
    2    usage or configuration error (bad arguments, a CREDSEAL_* setting missing or invalid)
    3    key source error (no keyring backend, locked keyring, missing or wrong passphrase,
         bad CREDSEAL_KEYS, damaged keyfile)
    4    vault error (no such entry, insecure or unreadable file or directory, I/O error)
    5    nothing to do (rotate: the primary key is not due, or every entry is current)
    75   another rotation is running (rotate: try again later)
    130  interrupted

Adding a command is one function decorated with :func:`command`.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import TextIO

import vault
from vault.cli import _everyday, _generate, _maintenance
from vault.cli._console import (
    COMMANDS,
    DESCRIPTION,
    EPILOG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_KEYS,
    EXIT_USAGE,
    EXIT_VAULT,
    Console,
    docs_dir,
)
from vault.errors import ConfigurationError, KeySourceError, VaultError

__all__ = ["build_parser", "main"]
_COMMAND_MODULES = (_everyday, _maintenance, _generate)  # importing them registers commands


def _common() -> argparse.ArgumentParser:
    # A new parent per parser: argparse shares the action objects of a parent with its children.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", metavar="PATH", default=argparse.SUPPRESS,
                        help="the vault directory (overrides CREDSEAL_DIR)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="print only results, warnings and errors (no progress, no notes)")
    return common


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``credseal`` (global options work before or after the
    command: ``credseal --dir D status`` and ``credseal status --dir D``)."""
    parser = argparse.ArgumentParser(
        prog="credseal", description=DESCRIPTION, epilog=EPILOG.format(docs=docs_dir()),
        parents=[_common()],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"credseal {vault.__version__}")
    parser.set_defaults(dir=None, debug=False, quiet=False, run=None, json=False,
                        describe_cli=_describe_cli)
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


def _describe_cli() -> tuple[argparse.ArgumentParser, str]:
    """A fresh parser and this module's docstring (its exit codes), for the completion and man
    commands: handed over in the parsed arguments, as ``vault.cli._generate`` cannot import
    this module (which imports it)."""
    return build_parser(), __doc__ or ""


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
        print("credseal: interrupted", file=stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc(file=stderr)
        message, hint, code = _describe(exc)
        if args.json:
            print(json.dumps({"error": message, "hint": hint or None, "exit_code": code}),
                  file=stderr)
            return code
        print(f"credseal: error: {message}", file=stderr)
        if hint:
            print(f"credseal: hint: {hint}", file=stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
