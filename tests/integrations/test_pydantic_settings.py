"""The pydantic-settings source (issue 15, part 2), following pydantic-settings' own tests of
its secret-manager sources: prefix, case, nested delimiter, aliases, SecretStr, complex values,
precedence, and reading only the entries the class asks for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

import vault
from vault.integrations.pydantic_settings import CredsealSettingsSource

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def v(tmp_path: Path) -> vault.Vault:
    return vault.Vault(tmp_path / "v", keys=vault.KeyRing([vault.Key.generate()]))


def settings_class(store: vault.Vault, config: SettingsConfigDict, **fields: Any) -> Any:
    """A Settings class whose only source is the vault (then the environment)."""
    class Db(BaseModel):
        host: str
        port: int = 5432

    namespace: dict[str, Any] = {"__annotations__": {}, "model_config": config}
    for name, (annotation, default) in fields.items():
        namespace["__annotations__"][name] = {"Db": Db}.get(annotation, annotation)
        if default is not ...:
            namespace[name] = default

    def sources(cls: type[BaseSettings], settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource
                ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, CredsealSettingsSource(settings_cls, store)
    namespace["settings_customise_sources"] = classmethod(sources)
    return type("Settings", (BaseSettings,), namespace)


def test_secret_fields_nested_models_and_json_values(v: vault.Vault) -> None:
    v.put("APP_DB_PASSWORD", "pw-1")
    v.put("APP_DB--HOST", "db.internal")
    v.put("APP_DB--PORT", 6543)
    v.put("APP_TAGS", ["a", "b"])
    v.put("APP_LIMITS", {"rps": 10})
    cls = settings_class(v, SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="--"),
                         db_password=(SecretStr, ...), db=("Db", ...), tags=(list[str], ...),
                         limits=(dict[str, int], ...))
    s = cls()
    assert s.db_password.get_secret_value() == "pw-1" and "pw-1" not in repr(s)
    assert (s.db.host, s.db.port) == ("db.internal", 6543)
    assert s.tags == ["a", "b"] and s.limits == {"rps": 10}


def test_case_insensitive_by_default_and_case_sensitive_when_asked(v: vault.Vault) -> None:
    v.put("app_token", "lower")
    loose = settings_class(v, SettingsConfigDict(env_prefix="APP_"), token=(str, ...))
    assert loose().token == "lower"
    strict = settings_class(v, SettingsConfigDict(env_prefix="APP_", case_sensitive=True),
                            token=(str, "unset"))
    assert strict().token == "unset"


def test_aliases_are_the_names(v: vault.Vault) -> None:
    v.put("DATABASE_URL", "postgresql://db/app")
    cls = settings_class(v, SettingsConfigDict(), url=(
        Any, Field(validation_alias=AliasChoices("DATABASE_URL", "DB_URL"))))
    assert cls().url == "postgresql://db/app"


def test_the_environment_wins_when_listed_first(v: vault.Vault,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    v.put("APP_LEVEL", "from-vault")
    cls = settings_class(v, SettingsConfigDict(env_prefix="APP_"), level=(str, ...))
    assert cls().level == "from-vault"
    monkeypatch.setenv("APP_LEVEL", "from-env")
    assert cls().level == "from-env"


def test_bytes_are_refused_naming_the_entry(v: vault.Vault) -> None:
    v.put("APP_CERT", {"der": b"\x30\x82"})
    cls = settings_class(v, SettingsConfigDict(env_prefix="APP_"), cert=(dict[str, str], ...))
    with pytest.raises(SettingsError, match='field "cert"') as caught:
        cls()  # pydantic-settings names the field; our error, its cause, names the entry
    assert "'APP_CERT' holds bytes" in str(caught.value.__cause__)


def test_a_missing_required_entry_is_a_validation_error(v: vault.Vault) -> None:
    cls = settings_class(v, SettingsConfigDict(env_prefix="APP_"), token=(SecretStr, ...))
    with pytest.raises(ValidationError, match="token"):
        cls()


def test_only_the_entries_the_class_asks_for_are_opened(v: vault.Vault, tmp_path: Path) -> None:
    """Entries of other services in the same vault, even ones that cannot be opened here,
    are never read: a foreign one sealed under a key this ring lacks breaks nothing."""
    v.put("APP_TOKEN", "t")
    other = vault.Vault(tmp_path / "other", keys=vault.KeyRing([vault.Key.generate()]))
    other.put("BILLING_SECRET", "not ours")
    foreign = next((tmp_path / "other").glob("*.cve"))
    (tmp_path / "v" / foreign.name).write_bytes(foreign.read_bytes())
    (tmp_path / "v" / foreign.name).chmod(0o600)
    cls = settings_class(v, SettingsConfigDict(env_prefix="APP_"), token=(str, ...))
    assert cls().token == "t"
    wants_it = settings_class(v, SettingsConfigDict(env_prefix="BILLING_"), secret=(str, ...))
    with pytest.raises(SettingsError) as caught:
        wants_it()
    assert "'BILLING_SECRET' cannot be read" in str(caught.value.__cause__)


def test_the_example_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "settings_source.py")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "db host db.internal:6543, password set: True" in out


def test_values_are_plain_json_and_null_is_absent(v: vault.Vault) -> None:
    """A value with a key like the codec's tags, or a huge integer, reaches pydantic as plain
    JSON; a stored None leaves the field's default."""
    v.put("APP_DOC", {"$ref": 1, "big": 2**2100})
    v.put("APP_NAME", None)
    cls = settings_class(v, SettingsConfigDict(env_prefix="APP_"), doc=(dict[str, int], ...),
                         name=(str | None, "default"))
    s = cls()
    assert s.doc == {"$ref": 1, "big": 2**2100} and s.name == "default"
