"""Settings from ``VAULT_*`` environment variables and a ``.env`` file; builds the vault.

The only module of credvault that reads the environment: everything below it takes plain
arguments. A bad value raises :class:`~vault.errors.ConfigurationError` with one line naming
each bad variable and what was expected, **never the value** (pydantic's own messages quote
the input, so they are not shown).

| variable | meaning | default |
| --- | --- | --- |
| ``VAULT_DIR`` | the vault directory | (required to open a vault) |
| ``VAULT_TTL`` | entry lifetime and maximum accepted age, seconds > 0 | 86400 |
| ``VAULT_KEY_SOURCE`` | ``env``, ``keyring`` or ``passphrase`` | (required for keys) |
| ``VAULT_KEYS`` | ``env`` source: key texts, comma-separated, primary first (secret) | |
| ``VAULT_KEYRING_SERVICE`` | ``keyring`` source: the service name of the items | ``credvault`` |
| ``VAULT_PASSPHRASE`` | ``passphrase`` source: the keyfile's passphrase (secret) | |
| ``VAULT_KDF_PROFILE`` | KDF profile of new keyfiles (``init``, ``passwd``) | rfc9106-low-memory |
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from vault import kdf
from vault.errors import ConfigurationError
from vault.keysources import source_from_settings
from vault.store import Vault

__all__ = ["KeySourceKind", "VaultSettings", "open_vault", "unknown_variables"]

KeySourceKind = Literal["env", "keyring", "passphrase"]
PREFIX = "VAULT_"
_EXPECTED = {
    "dir": "a directory path",
    "ttl": "a number of seconds greater than 0",
    "key_source": "one of env, keyring, passphrase",
    "keys": "cv1:<id>:<key> texts, comma-separated, primary first",
    "keyring_service": "a non-empty keyring service name",
    "passphrase": "a non-empty passphrase",
    "kdf_profile": f"one of {', '.join(sorted(kdf.PROFILES))}",
}
_HINT = "fix the variable in the environment or in .env; `credvault diagnose` checks them all"


def _describe(exc: ValidationError) -> str:
    """One line naming every bad variable and what it expects; the input is never quoted."""
    problems: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = PREFIX + field.upper() if field in _EXPECTED else "a VAULT_ setting"
        problem = f"{name}: expected {_EXPECTED.get(field, 'a valid value')}"
        if problem not in problems:
            problems.append(problem)
    return "invalid setting " + "; ".join(problems)


class VaultSettings(BaseSettings):
    """credvault's settings (see the module docstring for the variables).

    Values passed as keyword arguments win over the environment, which wins over ``.env``;
    ``VaultSettings(_env_file=None)`` ignores ``.env``. Empty variables count as unset.

    Raises:
        ConfigurationError: a value cannot be used (one line, no value quoted).
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True,
        extra="ignore", frozen=True, hide_input_in_errors=True)

    dir: Path | None = None
    ttl: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    key_source: KeySourceKind | None = None
    keys: SecretStr | None = None
    keyring_service: str = Field(default="credvault", min_length=1)
    passphrase: SecretStr | None = None
    kdf_profile: str | None = None

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc), hint=_HINT) from None
        except SettingsError:
            raise ConfigurationError("the VAULT_ settings could not be read (is .env valid?)",
                                     hint=_HINT) from None

    @field_validator("kdf_profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in kdf.PROFILES:
            raise ValueError("unknown KDF profile")
        return value

    @field_validator("keyring_service")
    @classmethod
    def _service_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("blank keyring service")
        return value

    def require_dir(self) -> Path:
        """Return ``dir``.

        Raises:
            ConfigurationError: ``VAULT_DIR`` is not set.
        """
        if self.dir is None:
            raise ConfigurationError("VAULT_DIR is not set: expected the vault directory path",
                                     hint="export VAULT_DIR=/var/lib/<service>/vault "
                                          "(or pass --dir)")
        return self.dir

    def require_key_source(self) -> KeySourceKind:
        """Return ``key_source``.

        Raises:
            ConfigurationError: ``VAULT_KEY_SOURCE`` is not set.
        """
        if self.key_source is None:
            raise ConfigurationError("VAULT_KEY_SOURCE is not set: expected one of env, "
                                     "keyring, passphrase",
                                     hint="see docs/keys.md to choose where the keys live")
        return self.key_source


def unknown_variables() -> list[str]:
    """Names of ``VAULT_*`` environment variables that are not settings (typos, usually)."""
    known = {PREFIX + name.upper() for name in VaultSettings.model_fields}
    return sorted(name for name in os.environ
                  if name.upper().startswith(PREFIX) and name.upper() not in known)


def open_vault(settings: VaultSettings | None = None, *,
               passphrase: bytes | str | None = None) -> Vault:
    """Build the :class:`~vault.store.Vault` that the settings describe.

    Args:
        settings: default ``VaultSettings()`` (environment and ``.env``).
        passphrase: for ``VAULT_KEY_SOURCE=passphrase``; default ``VAULT_PASSPHRASE``.

    Raises:
        ConfigurationError: a setting is missing or invalid.
        KeySourceError: the keys cannot be loaded (with a hint).
        InsecureFileError: the vault directory is not private.
    """
    settings = settings if settings is not None else VaultSettings()
    directory = settings.require_dir()
    source = source_from_settings(settings, passphrase)
    if settings.ttl is None:
        return Vault(directory, keys=source)
    return Vault(directory, keys=source, ttl=settings.ttl)
