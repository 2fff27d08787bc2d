"""``CredsealSettingsSource``: a pydantic-settings source over a credseal vault.

A service's own ``Settings`` class gets its ``SecretStr`` fields and nested models from vault
entries, the way pydantic-settings' AWS, Azure and GCP sources do it: a subclass of
``EnvSettingsSource`` whose ``_load_env_vars`` is a lazy mapping of entry names to strings.
An entry's name is what the environment variable would be called (``env_prefix``, the field
name or alias, ``env_nested_delimiter`` for nested fields: ``APP_DB--HOST``), compared
case-insensitively unless ``case_sensitive``. Only entries whose names could belong to the
class (its prefix and one of its fields) are listed, and each is opened only when asked for.

Values become the strings ``EnvSettingsSource`` expects: a string as it is, any other value
as plain JSON, which pydantic parses for ``int``, ``list``, nested models and the like; a
stored ``None`` counts as absent; ``bytes`` anywhere are refused with a ``SettingsError``
naming the entry (settings are text). Wire it through ``settings_customise_sources``::

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="--")
        db_password: SecretStr

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                       dotenv_settings, file_secret_settings):
            return (init_settings, env_settings,
                    CredsealSettingsSource(settings_cls, vault.open_vault()))

Named apart from credseal's own settings (``vault.config.VaultSettings``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.exceptions import SettingsError

from vault._store.store import Vault
from vault.errors import EntryNotFoundError, VaultError

__all__ = ["CredsealSettingsSource"]


def _has_bytes(value: Any) -> bool:
    if isinstance(value, bytes | bytearray):
        return True
    if isinstance(value, dict):
        return any(_has_bytes(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bytes(v) for v in value)
    return False


class _VaultMapping(Mapping[str, str | None]):
    """Entry names (as the class would name its variables) to strings, opened on access."""

    def __init__(self, vault: Vault, names: list[str], case_sensitive: bool) -> None:
        self._vault = vault
        self._case_sensitive = case_sensitive
        self._names = {(n if case_sensitive else n.lower()): n for n in names}
        self._loaded: dict[str, str | None] = {}

    def __getitem__(self, key: str) -> str | None:
        wanted = key if self._case_sensitive else key.lower()
        if wanted in self._loaded:
            return self._loaded[wanted]
        name = self._names.get(wanted)
        if name is None:
            raise KeyError(key)
        try:
            value = self._vault.get(name)
        except EntryNotFoundError:
            raise KeyError(key) from None
        except VaultError as exc:
            raise SettingsError(f"credseal entry {name!r} cannot be read: {exc}") from None
        if _has_bytes(value):
            raise SettingsError(f"credseal entry {name!r} holds bytes, which a setting cannot "
                                "take: store text (or base64 of it) for settings")
        if value is None:  # a stored null is no value: the field's default applies
            raise KeyError(key)
        # Plain JSON, as an environment variable would hold it (bytes were refused above).
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        self._loaded[wanted] = text
        return text

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)


class CredsealSettingsSource(EnvSettingsSource):
    """Settings from the entries of ``vault`` (see the module docstring).

    Args:
        settings_cls: the settings class (as every pydantic-settings source takes it).
        vault: an open :class:`~vault.Vault` with keys.
        env_prefix, case_sensitive, env_nested_delimiter: as for ``EnvSettingsSource``;
            default: the class's own ``model_config``.
    """

    def __init__(self, settings_cls: type[BaseSettings], vault: Vault, *,
                 env_prefix: str | None = None, case_sensitive: bool | None = None,
                 env_nested_delimiter: str | None = None) -> None:
        self._vault = vault
        super().__init__(settings_cls, case_sensitive=case_sensitive, env_prefix=env_prefix,
                         env_nested_delimiter=env_nested_delimiter, env_ignore_empty=False)

    def _candidates(self) -> list[str]:
        """The vault's entry names that could be one of the class's variables."""
        starts = []
        for field_name, field in self.settings_cls.model_fields.items():
            for _, env_name, _ in self._extract_field_info(field, field_name):
                starts.append(env_name if self.case_sensitive else env_name.lower())
        delimiter = self.env_nested_delimiter or ""
        chosen = []
        for name in self._vault.names():
            seen = name if self.case_sensitive else name.lower()
            if any(seen == s or (delimiter and seen.startswith(s + delimiter)) for s in starts):
                chosen.append(name)
        return chosen

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return _VaultMapping(self._vault, self._candidates(), self.case_sensitive)

    def __repr__(self) -> str:
        return f"CredsealSettingsSource({self._vault!r})"
