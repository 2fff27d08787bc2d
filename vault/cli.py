"""The ``credvault`` command line: a thin argparse layer over the library.

Only this module prints, prompts or exits. Errors print as ``credvault: error: ...`` plus
``credvault: hint: ...``; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import sys

import vault

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DESCRIPTION = """\
Keep service credentials encrypted at rest, serve them through database outages,
and rotate keys without losing a byte.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``credvault``."""
    parser = argparse.ArgumentParser(
        prog="credvault", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"credvault {vault.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
