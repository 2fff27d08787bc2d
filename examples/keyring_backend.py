"""keyring's own API over credseal's keyring backend, on a server without a desktop session.

Run: python examples/keyring_backend.py (a throwaway vault in the temp directory, removed at
the end). A service would set these variables in its unit file instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

SCRIPT = """\
import keyring
keyring.set_password("pypi", "__token__", "pypi-example-token")
print("backend:", type(keyring.get_keyring()).__name__)
print("token read back:", keyring.get_password("pypi", "__token__") == "pypi-example-token")
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="credseal-keyring-") as tmp:
        env = {**os.environ,
               "PYTHON_KEYRING_BACKEND": "vault.integrations.keyring_backend.CredsealKeyring",
               "CREDSEAL_BACKEND_DIR": os.path.join(tmp, "keyring"),
               "CREDSEAL_BACKEND_KEY_SOURCE": "passphrase",
               "CREDSEAL_BACKEND_PASSPHRASE": "example passphrase, four words long",
               "CREDSEAL_BACKEND_KDF_PROFILE": "test"}  # the example's speed; never in use
        subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True)
        names = sorted(os.listdir(os.path.join(tmp, "keyring")))
        print("files:", ", ".join(n for n in names if not n.startswith(".")))


if __name__ == "__main__":
    main()
