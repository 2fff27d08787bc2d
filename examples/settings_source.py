"""A service's own pydantic-settings class reading its secrets from a credseal vault.

Run: python examples/settings_source.py (makes a throwaway vault and removes it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

import vault
from vault.integrations.pydantic_settings import CredsealSettingsSource


class Database(BaseModel):
    host: str
    port: int = 5432


def settings_from(store: vault.Vault) -> BaseSettings:
    """The service's settings: environment first, then the vault."""
    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="SHOP_", env_nested_delimiter="--")
        db: Database
        db_password: SecretStr

        @classmethod
        def settings_customise_sources(
                cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, CredsealSettingsSource(settings_cls, store)

    return Settings()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="credseal-settings-") as tmp:
        store = vault.Vault(Path(tmp) / "vault", keys=vault.KeyRing([vault.Key.generate()]))
        store.put("SHOP_DB--HOST", "db.internal")  # an operator puts them once
        store.put("SHOP_DB--PORT", 6543)
        store.put("SHOP_DB_PASSWORD", "correct horse battery staple")
        settings = settings_from(store)
        db: Database = settings.db  # type: ignore[attr-defined]
        password: SecretStr = settings.db_password  # type: ignore[attr-defined]
        print(f"db host {db.host}:{db.port}, password set: {bool(password.get_secret_value())}")


if __name__ == "__main__":
    main()
