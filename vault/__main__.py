"""``python -m vault``: the same as the ``credseal`` command."""

import sys

from vault.cli import main

sys.exit(main())
