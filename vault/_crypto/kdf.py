"""Passphrase -> key-encryption key with Argon2id (RFC 9106), parameters as data.

:class:`KdfParams` is a frozen value checked against hard caps when it is built, so the
parameters read from a hostile keyfile are refused *before* any hashing: no unbounded memory,
no endless loop. Named profiles:

- ``"rfc9106-low-memory"`` (the default): RFC 9106 section 4, second recommended option,
  t=3, m=64 MiB, p=4 (about 0.1-0.2 s on a server core).
- ``"test"``: the cheapest parameters Argon2 accepts (t=1, m=8 KiB, p=1). **For tests only.**

Caps (inclusive): ``time_cost`` 1..10, ``memory_cost_kib`` 8*p..1 GiB, ``parallelism`` 1..16,
and ``time_cost * memory_cost_kib`` at most 4 GiB of memory passes, so the worst derivation
a keyfile can ask for is bounded (a few seconds, 1 GiB).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from vault.errors import ConfigurationError, KeySourceError

__all__ = [
    "DEFAULT_PROFILE",
    "KEK_SIZE",
    "MAX_MEMORY_KIB",
    "MAX_PARALLELISM",
    "MAX_PASSPHRASE_BYTES",
    "MAX_TIME_COST",
    "MAX_WORK_KIB",
    "PROFILES",
    "SALT_SIZE",
    "TEST_PARAMS",
    "KdfParams",
    "derive",
    "encode_passphrase",
    "profile",
    "profile_name",
]

KEK_SIZE = 32
SALT_SIZE = 16
MAX_TIME_COST = 10
MAX_MEMORY_KIB = 1024 * 1024
MAX_PARALLELISM = 16
MAX_WORK_KIB = 4 * 1024 * 1024
MAX_PASSPHRASE_BYTES = 4096
_FIELDS = ("time_cost", "memory_cost_kib", "parallelism")


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters: iterations, memory in KiB, lanes.

    Raises:
        ConfigurationError: a field is not an int (bools are refused), is out of range, or the
            combination exceeds the caps in the module docstring. The message names the field.
    """

    time_cost: int
    memory_cost_kib: int
    parallelism: int

    def __post_init__(self) -> None:
        for name in _FIELDS:
            if type(getattr(self, name)) is not int:
                raise ConfigurationError(f"KDF parameter {name} must be an integer")
        _check_range("parallelism", self.parallelism, 1, MAX_PARALLELISM)
        _check_range("time_cost", self.time_cost, 1, MAX_TIME_COST)
        # Argon2 needs 8 KiB per lane; the upper cap keeps a hostile file from exhausting memory.
        _check_range("memory_cost_kib", self.memory_cost_kib, 8 * self.parallelism,
                     MAX_MEMORY_KIB)
        if self.time_cost * self.memory_cost_kib > MAX_WORK_KIB:
            raise ConfigurationError(
                f"KDF parameters time_cost * memory_cost_kib exceed the cap of {MAX_WORK_KIB} "
                "KiB of memory passes")

    @classmethod
    def from_dict(cls, data: object) -> KdfParams:
        """Parse ``{"time_cost": int, "memory_cost_kib": int, "parallelism": int}`` strictly.

        Raises:
            ConfigurationError: not a mapping, missing or extra keys, wrong types, or values
                outside the caps (checked here, before anything is hashed).
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError("KDF parameters must be an object with time_cost, "
                                     "memory_cost_kib and parallelism")
        keys = set(data)
        if keys != set(_FIELDS):
            missing, extra = sorted(set(_FIELDS) - keys), sorted(map(str, keys - set(_FIELDS)))
            raise ConfigurationError(f"KDF parameters must have exactly the keys "
                                     f"{', '.join(_FIELDS)} (missing: {missing or 'none'}, "
                                     f"unexpected: {extra or 'none'})")
        return cls(time_cost=data["time_cost"], memory_cost_kib=data["memory_cost_kib"],
                   parallelism=data["parallelism"])

    def to_dict(self) -> dict[str, int]:
        """Return the parameters as a JSON-ready dict (the keyfile's ``kdf.params``)."""
        return {name: getattr(self, name) for name in _FIELDS}


def _check_range(name: str, value: int, low: int, high: int) -> None:
    # The value itself is not echoed: it may be a 4,000-digit number from a hostile file.
    if not low <= value <= high:
        raise ConfigurationError(f"KDF parameter {name} must be from {low} to {high}")


PROFILES: Mapping[str, KdfParams] = {
    # RFC 9106 section 4, second recommended option: for when 2 GiB per derivation is too much.
    "rfc9106-low-memory": KdfParams(time_cost=3, memory_cost_kib=64 * 1024, parallelism=4),
    # Argon2's minimum: a keyfile under it resists nothing. Tests only.
    "test": KdfParams(time_cost=1, memory_cost_kib=8, parallelism=1),
}
DEFAULT_PROFILE = "rfc9106-low-memory"
TEST_PARAMS = PROFILES["test"]


def profile(name: str) -> KdfParams:
    """Return the parameters of the named profile.

    Raises:
        ConfigurationError: no profile has that name; the message lists the names.
    """
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ConfigurationError(f"unknown KDF profile: expected one of "
                                 f"{', '.join(sorted(PROFILES))}") from None


def weaker(params: KdfParams, than: KdfParams) -> bool:
    """Whether ``params`` cost an attacker less than ``than``: less memory, or less work
    (passes times memory). Argon2id's strength is mostly its memory."""
    return (params.memory_cost_kib < than.memory_cost_kib
            or params.time_cost * params.memory_cost_kib < than.time_cost * than.memory_cost_kib)


def profile_name(params: KdfParams) -> str | None:
    """Return the name of the profile equal to ``params``, or ``None`` for custom ones."""
    return next((name for name, p in PROFILES.items() if p == params), None)


def encode_passphrase(passphrase: bytes | str) -> bytes:
    """Return the bytes Argon2id hashes for ``passphrase``.

    Raises:
        KeySourceError: empty, over ``MAX_PASSPHRASE_BYTES``, or not bytes/str.
    """
    if isinstance(passphrase, str):
        # NFC: the same passphrase typed on macOS (NFD input) and Linux must give the same key.
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    elif isinstance(passphrase, bytes | bytearray):
        secret = bytes(passphrase)
    else:
        raise KeySourceError(f"a passphrase must be str or bytes, not {type(passphrase).__name__}")
    if not secret:
        raise KeySourceError("the passphrase is empty",
                             hint="set CREDSEAL_PASSPHRASE or type a passphrase when asked")
    if len(secret) > MAX_PASSPHRASE_BYTES:
        raise KeySourceError(f"the passphrase is longer than {MAX_PASSPHRASE_BYTES} bytes")
    return secret


def derive(passphrase: bytes | str, salt: bytes, params: KdfParams) -> bytes:
    """Derive a 32-byte key-encryption key from ``passphrase`` with Argon2id.

    Args:
        passphrase: str (NFC-normalized, UTF-8) or bytes (used as is).
        salt: exactly ``SALT_SIZE`` (16) random bytes, stored next to the wrapped keys.
        params: a :class:`KdfParams` (already within the caps).

    Returns:
        The key-encryption key. **Secret.**

    Raises:
        KeySourceError: empty or over-long passphrase.
        ConfigurationError: a salt of the wrong size, or params that are not ``KdfParams``.
    """
    secret = encode_passphrase(passphrase)
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        raise ConfigurationError(f"the KDF salt must be exactly {SALT_SIZE} bytes")
    if not isinstance(params, KdfParams):
        raise ConfigurationError("params must be a KdfParams")
    # Argon2id: the RFC 9106 variant that resists both GPU cracking and side channels.
    return hash_secret_raw(secret, salt, time_cost=params.time_cost,
                           memory_cost=params.memory_cost_kib, parallelism=params.parallelism,
                           hash_len=KEK_SIZE, type=Type.ID)
