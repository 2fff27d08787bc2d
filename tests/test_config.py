"""Tests of vault.settings: CREDSEAL_* variables, .env, error messages, open_vault."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

import vault
from vault._crypto import kdf
from vault.config import (
    VaultSettings,
    hashicorp_variables,
    legacy_variables,
    open_vault,
    source_from_settings,
    unknown_variables,
)
from vault.errors import ConfigurationError, KeySourceError
from vault.keysources import EnvKeySource, OSKeyringSource, PassphraseKeySource

SECRET_LOOKING = "cv1:0123456789abcdef:hunter2-SECRET-VALUE-do-not-echo-xyzzy"
SetEnv = Callable[..., None]


@pytest.fixture
def setenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SetEnv:
    """Clear every CREDSEAL_* variable and cd into an empty directory (no .env); return a setter:
    ``setenv(dir="/x", key_source="env")`` sets CREDSEAL_DIR and CREDSEAL_KEY_SOURCE."""
    for name in list(os.environ):
        if name.upper().startswith(("CREDSEAL_", "VAULT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(f"CREDSEAL_{name.upper()}", value)
    return set_variables


def all_text(exc: BaseException) -> str:
    """Everything an operator could see of an exception: message, hint, repr, traceback."""
    hint = getattr(exc, "hint", "") or ""
    return "\n".join([str(exc), hint, repr(exc), *traceback.format_exception(exc)])


def test_defaults(setenv: SetEnv) -> None:
    """With no variable set: no dir, no source, default service, no secrets."""
    settings = VaultSettings()
    assert settings.dir is None and settings.key_source is None and settings.ttl is None
    assert settings.keyring_service == "credseal"
    assert settings.keys is None and settings.passphrase is None and settings.kdf_profile is None


def test_reads_every_variable(setenv: SetEnv, tmp_path: Path) -> None:
    """Each CREDSEAL_* variable lands in its field; secrets are SecretStr."""
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
    (tmp_path / ".env").write_text("CREDSEAL_KEY_SOURCE=keyring\nVAULT_TTL=30\nOTHER_APP=1\n")
    setenv(ttl="60")
    settings = VaultSettings()
    assert settings.key_source == "keyring" and settings.ttl == 60
    assert VaultSettings(_env_file=None).key_source is None


def test_empty_variables_count_as_unset(setenv: SetEnv) -> None:
    """CREDSEAL_KEY_SOURCE= (empty) is not an invalid value, just unset."""
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
    """One line naming CREDSEAL_<NAME> and what it expects; the value appears nowhere."""
    setenv(**{variable: value})
    with pytest.raises(ConfigurationError) as caught:
        VaultSettings()
    message = caught.value.message
    assert f"CREDSEAL_{variable.upper()}: expected" in message and expected in message
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
    assert "CREDSEAL_TTL" in caught.value.message and "CREDSEAL_KEY_SOURCE" in caught.value.message
    assert "\n" not in caught.value.message


def test_require_dir_and_key_source(setenv: SetEnv) -> None:
    """Unset CREDSEAL_DIR / CREDSEAL_KEY_SOURCE raise ConfigurationError with a hint when needed."""
    settings = VaultSettings()
    with pytest.raises(ConfigurationError, match="CREDSEAL_DIR is not set") as caught:
        settings.require_dir()
    assert caught.value.hint
    with pytest.raises(ConfigurationError, match="CREDSEAL_KEY_SOURCE is not set"):
        settings.require_key_source()


def test_unknown_variables_catch_typos(setenv: SetEnv) -> None:
    """A CREDSEAL_* name that is no setting is listed; real settings are not."""
    setenv(tll="30", ttl="30")
    assert unknown_variables() == ["CREDSEAL_TLL"]


def test_source_from_settings_selects_exactly_one(setenv: SetEnv, tmp_path: Path) -> None:
    """Each CREDSEAL_KEY_SOURCE gives its own source type; nothing falls back to another."""
    key_text = vault.Key.generate().to_text()
    setenv(keys=key_text, dir=str(tmp_path / "v"), passphrase="pw")
    assert isinstance(source_from_settings(VaultSettings(key_source="env")), EnvKeySource)
    assert isinstance(source_from_settings(VaultSettings(key_source="keyring")),
                      OSKeyringSource)
    assert isinstance(source_from_settings(VaultSettings(key_source="passphrase")),
                      PassphraseKeySource)
    with pytest.raises(ConfigurationError, match="CREDSEAL_KEY_SOURCE"):
        source_from_settings(VaultSettings())


def test_env_source_without_keys_is_an_error(setenv: SetEnv, tmp_path: Path) -> None:
    """CREDSEAL_KEY_SOURCE=env without CREDSEAL_KEYS says how to get keys."""
    setenv(key_source="env", dir=str(tmp_path / "v"))
    with pytest.raises(KeySourceError, match="CREDSEAL_KEYS is not set") as caught:
        open_vault(create=True)
    assert "credseal init" in (caught.value.hint or "")


def test_open_vault_env_round_trip(setenv: SetEnv, tmp_path: Path) -> None:
    """open_vault creates on request, then opens the same working vault, with CREDSEAL_TTL."""
    ring = vault.KeyRing([vault.Key.generate()])
    setenv(key_source="env", keys=ring.to_text(), dir=str(tmp_path / "v"), ttl="120")
    with pytest.raises(ConfigurationError, match="does not exist") as missing:
        open_vault()
    assert "CREDSEAL_DIR" in (missing.value.hint or "") and not (tmp_path / "v").exists()
    first = open_vault(create=True)
    first.put("db/password", "s3cret")
    second = vault.open_vault()
    assert second.get("db/password") == "s3cret"
    assert second.ttl == timedelta(seconds=120).total_seconds()
    assert second.keys.primary == ring.primary


def test_open_vault_passphrase(setenv: SetEnv, tmp_path: Path) -> None:
    """With the passphrase source, open_vault uses CREDSEAL_PASSPHRASE or the argument."""
    directory = tmp_path / "v"
    PassphraseKeySource(directory, "pw one", profile="test").create(vault.Key.generate())
    setenv(key_source="passphrase", dir=str(directory), kdf_profile="test")
    with pytest.raises(KeySourceError, match="passphrase is needed"):
        open_vault()
    open_vault(passphrase="pw one").put("a", 1)
    setenv(passphrase="pw one")
    assert vault.open_vault().get("a") == 1
    assert not hasattr(vault.Vault, "from_settings")  # the settings -> store cycle is gone
    with pytest.raises(KeySourceError, match="wrong passphrase"):
        open_vault(passphrase="pw two")


def test_default_kdf_profile_is_used_for_new_keyfiles(setenv: SetEnv, tmp_path: Path) -> None:
    """Without CREDSEAL_KDF_PROFILE the passphrase source writes RFC 9106 low-memory params."""
    setenv(key_source="passphrase", dir=str(tmp_path / "v"), passphrase="pw")
    source = source_from_settings(VaultSettings())
    assert isinstance(source, PassphraseKeySource)
    assert source._new_params == kdf.profile("rfc9106-low-memory")


# ---- the rename: VAULT_* settings of credvault ---------------------------------------------

def test_old_settings_alone_are_refused_naming_the_new_ones(setenv: SetEnv,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    """VAULT_DIR without CREDSEAL_DIR is a ConfigurationError naming CREDSEAL_DIR, never its
    value; in the environment and in .env alike."""
    monkeypatch.setenv("VAULT_DIR", str(tmp_path / "old-secret-path"))
    monkeypatch.setenv("VAULT_KEYS", "cv1:not-shown")
    with pytest.raises(ConfigurationError) as caught:
        VaultSettings()
    text = all_text(caught.value)
    assert "VAULT_DIR is set but CREDSEAL_DIR is not" in text
    assert "VAULT_KEYS -> CREDSEAL_KEYS" in (caught.value.hint or "")
    assert "old-secret-path" not in text and "not-shown" not in text
    monkeypatch.delenv("VAULT_DIR")
    monkeypatch.delenv("VAULT_KEYS")
    (tmp_path / ".env").write_text("export VAULT_KEY_SOURCE=env\n# VAULT_TTL=1 is a comment\n")
    with pytest.raises(ConfigurationError, match="VAULT_KEY_SOURCE is set but "
                                                 "CREDSEAL_KEY_SOURCE is not") as caught:
        VaultSettings()
    assert "VAULT_TTL" not in caught.value.message
    assert VaultSettings(_env_file=None).key_source is None  # no .env read: nothing stale


def test_old_settings_with_their_twins_and_hashicorp_variables_are_fine(
        setenv: SetEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A VAULT_* setting next to its CREDSEAL_* twin is ignored, and so are HashiCorp Vault's
    own variables (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE): never typos, never errors."""
    setenv(dir=str(tmp_path / "new"))
    for name, value in (("VAULT_DIR", "/old"), ("VAULT_ADDR", "https://vault.example:8200"),
                        ("VAULT_TOKEN", "hvs.x"), ("VAULT_NAMESPACE", "team")):
        monkeypatch.setenv(name, value)
    assert VaultSettings().dir == tmp_path / "new"
    assert unknown_variables() == []
    assert hashicorp_variables() == ["VAULT_ADDR", "VAULT_NAMESPACE", "VAULT_TOKEN"]
    assert legacy_variables(["VAULT_DIR", "CREDSEAL_DIR", "VAULT_ADDR", "VAULT_TOKEN"]) == []
    assert legacy_variables(["vault_ttl"]) == [("VAULT_TTL", "CREDSEAL_TTL")]


def test_the_default_keyring_service_falls_back_to_the_old_name(setenv: SetEnv) -> None:
    """With the default service the keyring source may use the old "credvault" service; a
    service named on purpose is used as it is."""
    setenv(key_source="keyring")
    source = source_from_settings(VaultSettings())
    assert isinstance(source, OSKeyringSource) and source.service == "credseal"
    assert source._legacy == "credvault"
    setenv(keyring_service="credseal")
    named = source_from_settings(VaultSettings())
    assert isinstance(named, OSKeyringSource) and named._legacy is None


def test_a_garbage_dotenv_is_a_configuration_error(setenv: SetEnv, tmp_path: Path) -> None:
    """A .env that is not UTF-8 text is a ConfigurationError (exit 2), not an internal error."""
    (tmp_path / ".env").write_bytes(b"CREDSEAL_DIR=\xff\xfe\x00garbage\n")
    with pytest.raises(ConfigurationError, match="could not be read"):
        VaultSettings()


def test_a_dotenv_others_can_write_is_refused(setenv: SetEnv, tmp_path: Path) -> None:
    """A world- or group-writable .env that sets our settings (here the KDF profile "test",
    which would let passwd rewrap the keyfile with t=1, m=8 KiB) is a ConfigurationError
    naming the file and its mode, never its content; a private one is read; a .env without
    our settings is none of our business."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("CREDSEAL_KDF_PROFILE=test\n")
    dotenv.chmod(0o666)
    with pytest.raises(ConfigurationError, match="mode 666") as caught:
        VaultSettings()
    assert "chmod go-w" in (caught.value.hint or "") and "test" not in caught.value.message
    dotenv.chmod(0o620)
    with pytest.raises(ConfigurationError, match="group or others may write"):
        VaultSettings()
    dotenv.chmod(0o644)
    assert VaultSettings().kdf_profile == "test"
    dotenv.write_text("OTHER_APP=1\n")
    dotenv.chmod(0o666)
    assert VaultSettings().kdf_profile is None
    assert VaultSettings(_env_file=None).kdf_profile is None


def test_a_dotenv_of_another_user_is_refused(setenv: SetEnv, tmp_path: Path) -> None:
    """A .env with our settings owned by another user (not root) is refused (needs root to
    give the file away, as CI runs)."""
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    dotenv = tmp_path / ".env"
    dotenv.write_text("export VAULT_DIR=/somewhere\n")
    dotenv.chmod(0o644)
    os.chown(dotenv, 65534, 65534)
    with pytest.raises(ConfigurationError, match="owned by uid 65534"):
        VaultSettings()
    os.chown(dotenv, 0, 0)
    with pytest.raises(ConfigurationError, match="VAULT_DIR is set but CREDSEAL_DIR"):
        VaultSettings()


def test_the_dotenv_check_sees_lowercase_names(setenv: SetEnv, tmp_path: Path) -> None:
    """pydantic-settings reads names case-insensitively, so a writable .env with
    credseal_kdf_profile=test is refused too."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("x=1\n" * 10 + "credseal_kdf_profile=test\n")
    dotenv.chmod(0o646)
    with pytest.raises(ConfigurationError, match="group or others may write"):
        VaultSettings()


@pytest.mark.parametrize(("value", "seconds"), [("1d", 86400.0), ("12h", 43200.0),
                                                ("30m", 1800.0), ("2w", 1209600.0),
                                                ("90", 90.0), ("1.5h", 5400.0)])
def test_ttl_takes_seconds_or_the_duration_syntax_of_the_commands(
        setenv: SetEnv, value: str, seconds: float) -> None:
    """CREDSEAL_TTL=1d was refused while `rotate --if-older-than 90d` worked: one syntax."""
    setenv(ttl=value)
    assert VaultSettings().ttl == seconds


# ---- keys and passphrases from files (issue 12: keys off stdout and out of the environment)


def _secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_keys_and_passphrase_come_from_files(setenv: SetEnv, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """CREDSEAL_KEYS_FILE and CREDSEAL_PASSPHRASE_FILE give the secrets (newline removed);
    systemd's $CREDENTIALS_DIRECTORY (LoadCredential=) supplies credseal_<name> files."""
    ring = vault.KeyRing([vault.Key.generate()]).to_text()
    setenv(keys_file=str(_secret_file(tmp_path / "keys", ring)),
           passphrase_file=str(_secret_file(tmp_path / "pass", "long enough words")))
    settings = VaultSettings()
    assert settings.keys is not None and settings.keys.get_secret_value() == ring
    assert settings.passphrase is not None
    assert settings.passphrase.get_secret_value() == "long enough words"
    assert ring not in repr(settings)
    monkeypatch.delenv("CREDSEAL_KEYS_FILE")
    monkeypatch.delenv("CREDSEAL_PASSPHRASE_FILE")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    _secret_file(credentials / "credseal_keys", ring, 0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    from_systemd = VaultSettings()
    assert from_systemd.keys is not None and from_systemd.keys.get_secret_value() == ring
    assert from_systemd.passphrase is None


@pytest.mark.parametrize(("mode", "problem"), [(0o620, "group or others may write it"),
                                               (0o602, "group or others may write it")])
def test_a_secret_file_others_may_write_is_refused(setenv: SetEnv, tmp_path: Path, mode: int,
                                                   problem: str) -> None:
    setenv(keys_file=str(_secret_file(tmp_path / "keys", SECRET_LOOKING, mode)))
    with pytest.raises(ConfigurationError, match=problem) as caught:
        VaultSettings()
    assert SECRET_LOOKING not in all_text(caught.value)


def test_secret_file_rules(setenv: SetEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           caplog: pytest.LogCaptureFixture) -> None:
    """Both the variable and its file: refused; a missing file names the variable; a
    world-readable file (container secrets are 0444) works, with a warning; a file of
    another user than this one or root is refused."""
    path = _secret_file(tmp_path / "keys", SECRET_LOOKING, 0o444)
    setenv(keys_file=str(path), keys=SECRET_LOOKING)
    with pytest.raises(ConfigurationError, match="both CREDSEAL_KEYS and CREDSEAL_KEYS_FILE"):
        VaultSettings()
    monkeypatch.delenv("CREDSEAL_KEYS")
    with caplog.at_level("WARNING", logger="vault.config"):
        assert VaultSettings().keys is not None
    assert "readable by every user" in caplog.text and SECRET_LOOKING not in caplog.text
    setenv(keys_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"CREDSEAL_KEYS_FILE .* cannot be read"):
        VaultSettings()
    if os.geteuid() == 0:  # changing an owner needs root; the suite runs as root in CI
        os.chown(path, 65534, 65534)
        setenv(keys_file=str(path))
        with pytest.raises(ConfigurationError, match="owned by uid 65534"):
            VaultSettings()


# ---- the shared tier and open_cache (issue 13)

def test_open_shared_reads_the_redis_settings(setenv: SetEnv) -> None:
    from vault.cache.redis import RedisTier
    from vault.config import open_shared

    assert open_shared(VaultSettings()) is None
    setenv(redis_url="redis://:hunter2-SECRET-VALUE@127.0.0.1:1/0", redis_namespace="fleet-a")
    tier = open_shared(VaultSettings())
    assert isinstance(tier, RedisTier) and tier.namespace == "fleet-a"
    assert "hunter2" not in repr(tier) and "hunter2" not in repr(VaultSettings())
    tier.close()
    setenv(redis_sentinels="127.0.0.1:26379")
    with pytest.raises(ConfigurationError, match="not both"):
        open_shared(VaultSettings())


@pytest.mark.parametrize(("variables", "message"), [
    ({"redis_service": "m"}, "without CREDSEAL_REDIS_SENTINELS"),
    ({"redis_sentinels": "127.0.0.1:26379"}, "needs CREDSEAL_REDIS_SERVICE"),
    ({"redis_sentinels": "host-without-port", "redis_service": "m"}, "host:port pairs"),
    ({"redis_sentinels": "h:99999", "redis_service": "m"}, "host:port pairs"),
    ({"redis_url": "http://" + SECRET_LOOKING}, "not a Redis URL"),
])
def test_open_shared_refuses_half_or_bad_settings(setenv: SetEnv, variables: dict[str, str],
                                                  message: str) -> None:
    from vault.config import open_shared

    setenv(**variables)
    with pytest.raises(ConfigurationError, match=message) as caught:
        open_shared(VaultSettings())
    assert "hunter2" not in all_text(caught.value)


def test_open_shared_builds_a_sentinel_tier(setenv: SetEnv) -> None:
    from vault.config import open_shared

    setenv(redis_sentinels="127.0.0.1:26379, [::1]:26380", redis_service="mymaster")
    tier = open_shared(VaultSettings())
    assert tier is not None and tier.worst_case_seconds <= 2.0
    tier.close()


def test_open_cache_builds_source_vault_and_tier(setenv: SetEnv, tmp_path: Path) -> None:
    from vault.cache.redis import RedisTier
    from vault.sources import SQLiteSource

    db = tmp_path / "app.db"
    with SQLiteSource(db) as source:
        source.create_schema()
        source.save("c1", {"n": 1})
    ring = vault.KeyRing([vault.Key.generate()])
    setenv(dir=str(tmp_path / "v"), key_source="env", keys=ring.to_text(),
           primary=f"sqlite://{db}")
    (tmp_path / "v").mkdir(mode=0o700)
    with vault.open_cache() as cache:
        assert cache.shared is None and cache.get("c1") == {"n": 1}
    cache.source.close()
    setenv(redis_url="redis://127.0.0.1:1/0")  # nothing listens: the tier just fails
    with vault.open_cache() as cache:
        assert isinstance(cache.shared, RedisTier) and cache.host
        assert cache.get("c1") == {"n": 1}
    cache.source.close()
    cache.shared.close()
