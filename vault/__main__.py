"""``python -m vault``: the same as the ``credvault`` command."""

import sys

from vault.cli import main

sys.exit(main())
