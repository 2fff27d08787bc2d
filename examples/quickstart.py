"""credvault in one minute: store a WhatsApp-style credential, look at the file, rotate the key.

Run it with ./scripts/quickstart. Everything happens in a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import vault


def main() -> None:
    """Put and get a Baileys-like credential, show the ciphertext, rotate to a new key."""
    workdir = Path(tempfile.mkdtemp(prefix="credvault-quickstart-"))
    key = vault.Key.generate()
    v = vault.Vault(workdir / "vault", keys=vault.KeyRing([key]), ttl=3600)

    creds = {
        "noiseKey": {"private": os.urandom(32), "public": os.urandom(32)},
        "signedIdentityKey": {"private": os.urandom(32), "public": os.urandom(33)},
        "registrationId": 4711,
        "advSecretKey": "hCt4KQ0DbJTs2eX7Qv0uAc9o7Ah4Ndr0Jx0bqDBwWzA=",
        "me": {"id": "4915100000000:7@s.whatsapp.net", "name": "Example Shop"},
    }
    v.put("company-42", creds)
    back = v.get("company-42")
    print(f"1. stored and read back 'company-42': equal={back == creds}, "
          f"noiseKey.private is {type(back['noiseKey']['private']).__name__}")

    path = next((workdir / "vault").glob("*.cve"))
    data = path.read_bytes()
    print(f"2. the file {path.name[:16]}... is {len(data)} bytes, starts with {data[:4]!r}; "
          f"contains the shop name in clear: {b'Example Shop' in data}")
    info = v.info("company-42")
    print(f"   visible without a key: name={info.name!r} key={info.key_id} "
          f"created={info.created_at:%Y-%m-%d %H:%M:%S} UTC")

    new_key = vault.Key.generate()
    rotated = vault.Vault(workdir / "vault", keys=vault.KeyRing([new_key, key]), ttl=3600)
    report = rotated.rotate()
    print(f"3. rotated from {key.id} to {new_key.id}: rewrapped={report.rotated} "
          f"failed={report.failed}")
    only_new = vault.Vault(workdir / "vault", keys=vault.KeyRing([new_key]), ttl=3600)
    print(f"   the new key alone opens it: {only_new.get('company-42') == creds}")
    print(f"(files left in {workdir} for you to look at)")


if __name__ == "__main__":
    main()
