"""Test data for the benchmarks: a Baileys-like credential of about 11.6 KB as JSON."""

from __future__ import annotations

import base64
import json
import os
from typing import Any


def baileys_like(pre_keys: int = 66) -> dict[str, Any]:
    """Return a WhatsApp/Baileys-style session: creds plus a key store, bytes throughout."""
    r = os.urandom
    return {
        "creds": {
            "noiseKey": {"private": r(32), "public": r(32)},
            "pairingEphemeralKeyPair": {"private": r(32), "public": r(32)},
            "signedIdentityKey": {"private": r(32), "public": r(32)},
            "signedPreKey": {"keyPair": {"private": r(32), "public": r(32)},
                             "signature": r(64), "keyId": 1},
            "registrationId": 4711,
            "advSecretKey": base64.b64encode(r(32)).decode(),
            "me": {"id": "4915100000000:7@s.whatsapp.net", "name": "Example Shop"},
            "account": {"details": r(180), "accountSignatureKey": r(32),
                        "accountSignature": r(64), "deviceSignature": r(64)},
            "signalIdentities": [{"identifier": {"name": "4915100000000:7@s.whatsapp.net",
                                                 "deviceId": 0}, "identifierKey": r(33)}],
            "platform": "android", "nextPreKeyId": pre_keys + 1, "registered": True,
        },
        "keys": {f"pre-key-{i}": {"private": r(32), "public": r(32)}
                 for i in range(1, pre_keys + 1)},
    }


def tagged_default(obj: object) -> object:
    """The original service's encoder hook: bytes as base64 tags (``json.dumps(default=)``)."""
    if isinstance(obj, bytes):
        return {"$b": base64.b64encode(obj).decode("ascii")}
    raise TypeError(type(obj).__name__)


def json_size(value: Any) -> int:
    """Size of ``value`` as the original service wrote it."""
    return len(json.dumps(value, default=tagged_default))
