"""The passphrase keyfile, ``<vault dir>/keyfile.json`` (``docs/format.md`` section 10).

A strict JSON document: the Argon2id parameters and salt, and one record per key (id, state,
dates) with the live keys' material wrapped by AES-256-GCM under the key-encryption key. Each
wrap's associated data is the canonical JSON of the whole public document plus the key's id,
so changing a parameter, the salt, an id, a state, a date, or dropping or adding a record makes
every wrap fail to open. Parsing checks every key set, type, size and cap before anything is
hashed. Errors are :class:`~vault.errors.KeySourceError` naming the field; values are never
echoed. This module does no file I/O; ``vault.keysources._passphrase`` reads and writes the file.

The key-state records are those of ``vault.keysources._states`` (shared with the OS keyring index),
plus a ``wrapped`` field on live keys.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from vault._crypto import aead
from vault._crypto import format as fmt
from vault._crypto.kdf import SALT_SIZE, KdfParams
from vault._crypto.keys import ACTIVE, RETIRED, Key, KeyState, unwrap_key, wrap_key
from vault.errors import ConfigurationError, DecryptionError, InvalidKeyError, KeySourceError
from vault.keysources._binding import Binding, parse_binding
from vault.keysources._states import (
    check_states,
    exact_keys,
    invalid,
    loads_strict,
    parse_state,
    state_to_json,
)

__all__ = [
    "FORMAT_TAG", "KDF_ALG", "KEYFILE_NAME", "MAX_KEYFILE_SIZE", "MAX_RECORDS", "VERSION",
    "WRAPPED_SIZE", "Keyfile", "build", "dumps", "parse", "unwrap_all", "wrap_aad",
]

KEYFILE_NAME = "keyfile.json"
FORMAT_TAG = "credvault-keyfile"
VERSION = 1
KDF_ALG = "argon2id"
MAX_KEYFILE_SIZE = 64 * 1024
MAX_RECORDS = 64
WRAPPED_SIZE = aead.WRAP_NONCE_SIZE + aead.KEY_SIZE + fmt.TAG_SIZE
AAD_DOMAIN = b"credvault keyfile v1 wrap\0"


@dataclass(frozen=True)
class Keyfile:
    """A parsed keyfile. ``wrapped`` maps the id of every live key to its wrapped material."""

    params: KdfParams
    salt: bytes
    states: tuple[KeyState, ...]
    wrapped: Mapping[str, bytes] = field(repr=False)
    binding: Binding | None = None  # the optional "vault" field: absent before credseal 0.2


def _b64decode(value: object, size: int, where: str, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 4 * ((size + 2) // 3):
        invalid(where, what, f"must be {size} bytes in padded base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        invalid(where, what, "is not valid base64")
    if len(raw) != size or _b64(raw) != value:
        invalid(where, what, f"must be {size} bytes in canonical padded base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def parse(data: bytes, where: str) -> Keyfile:
    """Parse a keyfile strictly; ``where`` (its path) prefixes every error message.

    Everything is checked here, the KDF caps included, before the caller hashes anything.

    Raises:
        KeySourceError: naming the first field that is wrong.
    """
    raw = loads_strict(data, where, MAX_KEYFILE_SIZE)
    fields = {"format", "version", "kdf", "keys"}
    if isinstance(raw, dict) and "vault" in raw:
        fields.add("vault")
    doc = exact_keys(raw, fields, where, "document")
    if doc["format"] != FORMAT_TAG:
        invalid(where, "format", f"must be {FORMAT_TAG!r}: not a credseal keyfile")
    if type(doc["version"]) is not int or doc["version"] != VERSION:
        invalid(where, "version", f"unsupported: this release reads version {VERSION}")
    kdf = exact_keys(doc["kdf"], {"alg", "params", "salt"}, where, "kdf")
    if kdf["alg"] != KDF_ALG:
        invalid(where, "kdf.alg", f"must be {KDF_ALG!r}")
    try:
        params = KdfParams.from_dict(kdf["params"])
    except ConfigurationError as exc:
        invalid(where, "kdf.params", exc.message)
    salt = _b64decode(kdf["salt"], SALT_SIZE, where, "kdf.salt")
    records = doc["keys"]
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
        invalid(where, "keys", f"must be a list of 1 to {MAX_RECORDS} key records")
    states: list[KeyState] = []
    wrapped: dict[str, bytes] = {}
    for position, obj in enumerate(records):
        what = f"keys[{position}]"
        state, record = parse_state(obj, where, what, material_field="wrapped")
        if state.state != RETIRED:
            wrapped[state.id] = _b64decode(record["wrapped"], WRAPPED_SIZE, where,
                                           f"{what}.wrapped")
        states.append(state)
    check_states(tuple(states), where)
    binding = parse_binding(doc["vault"], where) if "vault" in doc else None
    return Keyfile(params=params, salt=salt, states=tuple(states), wrapped=wrapped,
                   binding=binding)


def wrap_aad(params: KdfParams, salt: bytes, states: tuple[KeyState, ...], key_id: str,
             binding: Binding | None = None) -> bytes:
    """The associated data of one wrap: the canonical public document plus the key's id.

    The ``vault`` binding is part of it when present (a keyfile without one keeps the
    associated data it always had), so a writer without the passphrase cannot change the
    vault id, the directories or their anchored audit heads."""
    public: dict[str, object] = {
        "format": FORMAT_TAG, "version": VERSION,
        "kdf": {"alg": KDF_ALG, "params": params.to_dict(), "salt": _b64(salt)},
        "keys": [state_to_json(s) for s in states], "key": key_id}
    if binding is not None:
        public["vault"] = binding.to_json()
    # Binding the whole public document: no field or record can change without detection.
    return AAD_DOMAIN + json.dumps(public, sort_keys=True, separators=(",", ":")).encode()


def build(params: KdfParams, salt: bytes, kek: bytes, states: tuple[KeyState, ...],
          keys: Mapping[str, Key], binding: Binding | None = None) -> Keyfile:
    """Wrap every live key of ``states`` (material from ``keys``, by id) under ``kek``, the
    ``binding`` (if any) bound into every wrap."""
    check_states(states, "new keyfile")
    wrapped = {}
    for state in states:
        if state.state != RETIRED:
            key = keys[state.id]
            if key.id != state.id:
                raise InvalidKeyError(f"key {key.id} recorded under id {state.id}")
            wrapped[state.id] = wrap_key(key, kek, wrap_aad(params, salt, states, state.id,
                                                            binding))
    return Keyfile(params=params, salt=salt, states=states, wrapped=wrapped, binding=binding)


def dumps(keyfile: Keyfile) -> bytes:
    """Serialize ``keyfile`` (indented JSON, one record per key, trailing newline)."""
    records = []
    for state in keyfile.states:
        record: dict[str, str] = state_to_json(state)
        if state.state != RETIRED:
            record["wrapped"] = _b64(keyfile.wrapped[state.id])
        records.append(record)
    doc: dict[str, object] = {"format": FORMAT_TAG, "version": VERSION,
                              "kdf": {"alg": KDF_ALG, "params": keyfile.params.to_dict(),
                                      "salt": _b64(keyfile.salt)},
                              "keys": records}
    if keyfile.binding is not None:
        doc["vault"] = keyfile.binding.to_json()
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def unwrap_all(keyfile: Keyfile, kek: bytes, where: str) -> dict[str, Key]:
    """Unwrap every live key; returns them by id.

    Raises:
        KeySourceError: "wrong passphrase (or the keyfile was modified)" if the first wrap
            fails; "keyfile was modified" if a later one fails or an id does not match.
    """
    keys: dict[str, Key] = {}
    live = sorted((s for s in keyfile.states if s.state != RETIRED),
                  key=lambda s: s.state != ACTIVE)
    for state in live:
        aad = wrap_aad(keyfile.params, keyfile.salt, keyfile.states, state.id, keyfile.binding)
        try:
            key = unwrap_key(keyfile.wrapped[state.id], kek, aad)
        except (DecryptionError, InvalidKeyError):
            if not keys:
                raise KeySourceError(
                    "wrong passphrase (or the keyfile was modified)",
                    hint="check CREDSEAL_PASSPHRASE (or what you typed); if it is right, restore "
                         f"{where} from backup") from None
            invalid(where, f"key {state.id}", "failed authentication: the keyfile was modified")
        if key.id != state.id:
            invalid(where, f"key {state.id}", "holds another key: the keyfile was modified")
        keys[state.id] = key
    return keys
