"""credseal's ``keyring.backends`` entry point: cheap in every process that asks keyring.

keyring loads every registered entry point in every process that uses it (pip, twine, ...).
Importing ``vault`` costs about 230 ms (cryptography, pydantic-settings), so this module, and
not the backend itself, is what is registered: it imports the backend only when keyring was
told to use it (``PYTHON_KEYRING_BACKEND`` or ``default-keyring`` in keyring's configuration
file naming ``vault.integrations.keyring_backend.CredsealKeyring``). Unconfigured, nothing of
credseal is loaded, so the backend is never chosen by surprise. It reads names only, never
a secret; ``vault.config.keyring_backend_configured`` is this same check.
"""

from __future__ import annotations

import os

__all__ = ["BACKEND", "configured", "load_if_configured"]

BACKEND = "vault.integrations.keyring_backend.CredsealKeyring"


def configured() -> bool:
    """Whether ``PYTHON_KEYRING_BACKEND`` or keyring's configuration file names the backend."""
    if os.environ.get("PYTHON_KEYRING_BACKEND", "").strip() == BACKEND:
        return True
    import configparser

    try:
        from keyring.util import platform_

        path = os.path.join(platform_.config_root(), "keyringrc.cfg")
        parser = configparser.RawConfigParser()
        parser.read(path, encoding="utf-8")
        return parser.get("backend", "default-keyring", fallback="").strip() == BACKEND
    except (OSError, configparser.Error, ImportError, UnicodeDecodeError):
        return False


def load_if_configured() -> None:
    """keyring's plugin hook: register ``CredsealKeyring`` only when it is configured."""
    if configured():
        import vault.integrations.keyring_backend  # noqa: F401  (registers the class)
