"""Tests of vault.settings: VAULT_* variables, .env, error messages, open_vault."""

from __future__ import annotations

import ast
import os
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

import vault
from vault import kdf
from vault.errors import ConfigurationError, KeySourceError
from vault.keysources import EnvKeySource, KeyringKeySource, PassphraseKeySource
from vault.settings import VaultSettings, open_vault, source_from_settings, unknown_variables

SECRET_LOOKING = "cv1:0123456789abcdef:hunter2-SECRET-VALUE-do-not-echo-xyzzy"
SetEnv = Callable[..., None]


@pytest.fixture
def setenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SetEnv:
    """Clear every VAULT_* variable and cd into an empty directory (no .env); return a setter:
    ``setenv(dir="/x", key_source="env")`` sets VAULT_DIR and VAULT_KEY_SOURCE."""
    for name in list(os.environ):
        if name.upper().startswith("VAULT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(f"VAULT_{name.upper()}", value)
    return set_variables


def all_text(exc: BaseException) -> str:
    """Everything an operator could see of an exception: message, hint, repr, traceback."""
    hint = getattr(exc, "hint", "") or ""
    return "\n".join([str(exc), hint, repr(exc), *traceback.format_exception(exc)])


def test_defaults(setenv: SetEnv) -> None:
    """With no variable set: no dir, no source, default service, no secrets."""
    settings = VaultSettings()
    assert settings.dir is None and settings.key_source is None and settings.ttl is None
    assert settings.keyring_service == "credvault"
    assert settings.keys is None and settings.passphrase is None and settings.kdf_profile is None


def test_reads_every_variable(setenv: SetEnv, tmp_path: Path) -> None:
    """Each VAULT_* variable lands in its field; secrets are SecretStr."""
    key_text = vault.Key.generate().to_text()
    setenv(dir=str(tmp_path / "v"), ttl="90.5", key_source="env", keys=key_text,
           keyring_service="svc", passphrase="pw words", kdf_profile="test")
    settings = VaultSettings()
    assert settings.dir == tmp_path / "v" and settings.ttl == 90.5
    assert settings.key_source == "env" and settings.keyring_service == "svc"
    assert settings.keys is not None and settings.keys.get_secret_value() == key_text
    assert settings.passphrase is not None and settings.passphrase.get_secret_value() == "pw words"
    assert settings.kdf_profile == "test"
    assert key_text not in repr(settings) and "pw words" not in repr(settings)


def test_dotenv_is_read_and_environment_wins(setenv: SetEnv, tmp_path: Path) -> None:
    """A .env in the working directory is read; a real variable overrides it."""
    (tmp_path / ".env").write_text("VAULT_KEY_SOURCE=keyring\nVAULT_TTL=30\nOTHER_APP=1\n")
    setenv(ttl="60")
    settings = VaultSettings()
    assert settings.key_source == "keyring" and settings.ttl == 60
    assert VaultSettings(_env_file=None).key_source is None


def test_empty_variables_count_as_unset(setenv: SetEnv) -> None:
    """VAULT_KEY_SOURCE= (empty) is not an invalid value, just unset."""
    setenv(key_source="", ttl="", keys="")
    settings = VaultSettings()
    assert settings.key_source is None and settings.ttl is None and settings.keys is None


def test_keyword_arguments_win(setenv: SetEnv, tmp_path: Path) -> None:
    """Values passed in code override the environment (the CLI's --dir)."""
    setenv(dir="/nowhere")
    assert VaultSettings(dir=tmp_path).dir == tmp_path


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("ttl", "0", "greater than 0"), ("ttl", "-5", "greater than 0"), ("ttl", "nan", "seconds"),
    ("ttl", "inf", "seconds"), ("ttl", SECRET_LOOKING, "seconds"),
    ("key_source", SECRET_LOOKING, "one of env, keyring, passphrase"),
    ("key_source", "ENVIRONMENT", "one of env, keyring, passphrase"),
    ("kdf_profile", SECRET_LOOKING, "one of rfc9106-low-memory, test"),
    ("keyring_service", "   ", "non-empty keyring service"),
])
def test_bad_value_names_variable_never_value(setenv: SetEnv, variable: str, value: str,
                                              expected: str) -> None:
    """One line naming VAULT_<NAME> and what it expects; the value appears nowhere."""
    setenv(**{variable: value})
    with pytest.raises(ConfigurationError) as caught:
        VaultSettings()
    message = caught.value.message
    assert f"VAULT_{variable.upper()}: expected" in message and expected in message
    assert "\n" not in message and caught.value.hint
    text = all_text(caught.value)
    assert "input_value" not in text
    if len(value.strip()) > 3:  # "0" or "inf" may be part of the explanation itself
        assert value not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_several_bad_values_in_one_line(setenv: SetEnv) -> None:
    """Two bad variables are both named, on one line."""
    setenv(ttl="soon", key_source="vault")
    with pytest.raises(ConfigurationError) as caught:
        VaultSettings()
    assert "VAULT_TTL" in caught.value.message and "VAULT_KEY_SOURCE" in caught.value.message
    assert "\n" not in caught.value.message


def test_require_dir_and_key_source(setenv: SetEnv) -> None:
    """Unset VAULT_DIR / VAULT_KEY_SOURCE raise ConfigurationError with a hint when needed."""
    settings = VaultSettings()
    with pytest.raises(ConfigurationError, match="VAULT_DIR is not set") as caught:
        settings.require_dir()
    assert caught.value.hint
    with pytest.raises(ConfigurationError, match="VAULT_KEY_SOURCE is not set"):
        settings.require_key_source()


def test_unknown_variables_catch_typos(setenv: SetEnv) -> None:
    """A VAULT_* name that is no setting is listed; real settings are not."""
    setenv(tll="30", ttl="30")
    assert unknown_variables() == ["VAULT_TLL"]


def test_source_from_settings_selects_exactly_one(setenv: SetEnv, tmp_path: Path) -> None:
    """Each VAULT_KEY_SOURCE gives its own source type; nothing falls back to another."""
    key_text = vault.Key.generate().to_text()
    setenv(keys=key_text, dir=str(tmp_path / "v"), passphrase="pw")
    assert isinstance(source_from_settings(VaultSettings(key_source="env")), EnvKeySource)
    assert isinstance(source_from_settings(VaultSettings(key_source="keyring")),
                      KeyringKeySource)
    assert isinstance(source_from_settings(VaultSettings(key_source="passphrase")),
                      PassphraseKeySource)
    with pytest.raises(ConfigurationError, match="VAULT_KEY_SOURCE"):
        source_from_settings(VaultSettings())


def test_env_source_without_keys_is_an_error(setenv: SetEnv, tmp_path: Path) -> None:
    """VAULT_KEY_SOURCE=env without VAULT_KEYS says how to get keys."""
    setenv(key_source="env", dir=str(tmp_path / "v"))
    with pytest.raises(KeySourceError, match="VAULT_KEYS is not set") as caught:
        open_vault()
    assert "credvault init" in (caught.value.hint or "")


def test_open_vault_env_round_trip(setenv: SetEnv, tmp_path: Path) -> None:
    """open_vault and Vault.from_settings build the same working vault, with VAULT_TTL."""
    ring = vault.KeyRing([vault.Key.generate()])
    setenv(key_source="env", keys=ring.to_text(), dir=str(tmp_path / "v"), ttl="120")
    first = open_vault()
    first.put("db/password", "s3cret")
    second = vault.Vault.from_settings()
    assert second.get("db/password") == "s3cret"
    assert second.ttl == timedelta(seconds=120).total_seconds()
    assert second.keys.primary == ring.primary


def test_open_vault_passphrase(setenv: SetEnv, tmp_path: Path) -> None:
    """With the passphrase source, open_vault uses VAULT_PASSPHRASE or the argument."""
    directory = tmp_path / "v"
    PassphraseKeySource(directory, "pw one", profile="test").create(vault.Key.generate())
    setenv(key_source="passphrase", dir=str(directory), kdf_profile="test")
    with pytest.raises(KeySourceError, match="passphrase is needed"):
        open_vault()
    open_vault(passphrase="pw one").put("a", 1)
    setenv(passphrase="pw one")
    assert vault.Vault.from_settings().get("a") == 1
    with pytest.raises(KeySourceError, match="wrong passphrase"):
        open_vault(passphrase="pw two")


def test_default_kdf_profile_is_used_for_new_keyfiles(setenv: SetEnv, tmp_path: Path) -> None:
    """Without VAULT_KDF_PROFILE the passphrase source writes RFC 9106 low-memory params."""
    setenv(key_source="passphrase", dir=str(tmp_path / "v"), passphrase="pw")
    source = source_from_settings(VaultSettings())
    assert isinstance(source, PassphraseKeySource)
    assert source._new_params == kdf.profile("rfc9106-low-memory")


def test_only_settings_reads_the_environment() -> None:
    """No vault module but settings.py touches os.environ, os.getenv or os.putenv."""
    package = Path(vault.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "settings.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "putenv",
                                                                  "environb"}:
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                    alias.name in {"environ", "getenv"} for alias in node.names):
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []
