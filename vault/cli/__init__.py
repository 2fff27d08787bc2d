"""The ``credseal`` command line (also ``python -m vault``): a thin layer over ``vault.ops``.

``main(argv)`` runs it and returns the exit code; ``credseal --help`` lists the commands and
the exit codes. Only this package prints, prompts or exits.
"""

from vault.cli._app import build_parser, main

__all__ = ["build_parser", "main"]
