"""Settings from ``CREDSEAL_*`` environment variables and a ``.env`` file; builds the vault.

The only module of credseal that reads the environment: everything below it takes plain
arguments (the key source, the directory, a :class:`Context`). A bad value raises
:class:`~vault.errors.ConfigurationError` with one line naming each bad variable and what was
expected, **never the value** (pydantic's own messages quote the input, so they are not shown).

| variable | meaning | default |
| --- | --- | --- |
| ``CREDSEAL_DIR`` | the vault directory | (required to open a vault) |
| ``CREDSEAL_TTL`` | entry lifetime and maximum accepted age, seconds > 0 | 86400 |
| ``CREDSEAL_KEY_SOURCE`` | ``env``, ``keyring`` or ``passphrase`` | (required for keys) |
| ``CREDSEAL_KEYS`` | ``env`` source: key texts, comma-separated, primary first (secret) | |
| ``CREDSEAL_KEYRING_SERVICE`` | ``keyring`` source: the service name of the items | ``credseal`` |
| ``CREDSEAL_PASSPHRASE`` | ``passphrase`` source: the keyfile's passphrase (secret) | |
| ``CREDSEAL_PRIMARY`` | the primary's URL (secret): ``sqlite:///<path>``, ``postgresql://...`` | |
| ``CREDSEAL_PRIMARY_TABLE`` | its table | the source's default |
| ``CREDSEAL_KDF_PROFILE`` | KDF profile of new keyfiles (init, passwd) | rfc9106-low-memory |
| ``CREDSEAL_PRIMARY_SEALED`` | ``true``: the primary's rows are sealed (``keys=``) | false |
| ``CREDSEAL_REDIS_URL`` | the fleet's shared tier (secret): ``redis://``, ``rediss://`` | |
| ``CREDSEAL_REDIS_SENTINELS`` | or its Sentinels: ``host:port,host:port`` | |
| ``CREDSEAL_REDIS_SERVICE`` | the Sentinel service (master) name | |
| ``CREDSEAL_REDIS_NAMESPACE`` | the shared tier's key prefix | ``credseal`` |

Before the rename the prefix was ``VAULT_``: such a variable set without its ``CREDSEAL_``
twin is refused with an error naming the new variable, so an upgrade never silently runs
without its settings. HashiCorp Vault's own ``VAULT_*`` variables are left alone.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from vault import _files as files
from vault._crypto import kdf
from vault._store.context import Context
from vault._store.store import Vault
from vault.errors import ConfigurationError, KeySourceError
from vault.keysources import (
    DEFAULT_SERVICE,
    LEGACY_SERVICE,
    EnvKeySource,
    ManagedKeySource,
    OSKeyringSource,
    PassphraseKeySource,
)
from vault.sources import Source, SQLiteSource

if TYPE_CHECKING:
    from vault.cache import FallbackCache
    from vault.cache.redis import RedisTier

__all__ = [
    "BACKEND_PREFIX",
    "HASHICORP_VARIABLES",
    "KEYRING_BACKEND",
    "LEGACY_PREFIX",
    "PREFIX",
    "BackendSettings",
    "Context",
    "KeySourceKind",
    "VaultSettings",
    "check_dotenv",
    "current_context",
    "dotenv_variables",
    "hashicorp_variables",
    "keyring_backend_configured",
    "legacy_variables",
    "near_miss",
    "open_cache",
    "open_primary",
    "open_shared",
    "open_vault",
    "parse_duration",
    "source_from_settings",
    "unknown_variables",
]

KeySourceKind = Literal["env", "keyring", "passphrase"]
PREFIX = "CREDSEAL_"
#: The settings prefix before credvault was renamed credseal.
LEGACY_PREFIX = "VAULT_"
#: Variables of HashiCorp Vault's CLI and agents: theirs, not ours (never called typos).
HASHICORP_VARIABLES = frozenset({
    "VAULT_ADDR", "VAULT_AGENT_ADDR", "VAULT_CACERT", "VAULT_CACERT_BYTES", "VAULT_CAPATH",
    "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_CLIENT_TIMEOUT", "VAULT_CLUSTER_ADDR",
    "VAULT_DISABLE_REDIRECTS", "VAULT_FORMAT", "VAULT_HTTP_PROXY", "VAULT_LICENSE",
    "VAULT_LICENSE_PATH", "VAULT_LOG_FORMAT", "VAULT_LOG_LEVEL", "VAULT_MAX_RETRIES",
    "VAULT_MFA", "VAULT_NAMESPACE", "VAULT_PROXY_ADDR", "VAULT_RATE_LIMIT",
    "VAULT_REDIRECT_ADDR", "VAULT_SKIP_VERIFY", "VAULT_SRV_LOOKUP", "VAULT_TLS_SERVER_NAME",
    "VAULT_TOKEN", "VAULT_UI", "VAULT_WRAP_TTL", "VAULT_API_ADDR", "VAULT_CLI_NO_COLOR",
    "VAULT_DISABLE_FILE_PERMISSIONS_CHECK", "VAULT_HEADERS",
})
_EXPECTED = {
    "dir": "a directory path",
    "ttl": "a number of seconds greater than 0, or a duration like 1d, 12h or 30m",
    "key_source": "one of env, keyring, passphrase",
    "keys": "cv1:<id>:<key> texts, comma-separated, primary first",
    "keyring_service": "a non-empty keyring service name",
    "passphrase": "a non-empty passphrase",
    "kdf_profile": f"one of {', '.join(sorted(kdf.PROFILES))}",
    "primary": "a URL: sqlite:///<absolute path> or postgresql://...",
    "primary_table": "a lowercase table name, optionally schema-qualified",
    "primary_sealed": "true or false",
    "redis_url": "a Redis URL: redis://, rediss:// or unix://",
    "redis_sentinels": "host:port pairs, comma-separated",
    "redis_service": "the Sentinel service (master) name",
    "redis_namespace": "1 to 64 printable characters without spaces or braces",
}
_HINT = "fix the variable in the environment or in .env; `credseal diagnose` checks them all"


def _describe(exc: ValidationError, prefix: str = "CREDSEAL_") -> str:
    """One line naming every bad variable and what it expects; the input is never quoted."""
    problems: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = prefix + field.upper() if field in _EXPECTED else f"a {prefix} setting"
        problem = f"{name}: expected {_EXPECTED.get(field, 'a valid value')}"
        if problem not in problems:
            problems.append(problem)
    return "invalid setting " + "; ".join(problems)


def legacy_variables(names: Iterable[str]) -> list[tuple[str, str]]:
    """(old, new) for each pre-rename ``VAULT_*`` setting in ``names`` without its twin."""
    present = {name.upper() for name in names}
    pairs = []
    for field in VaultSettings.model_fields:
        old, new = LEGACY_PREFIX + field.upper(), PREFIX + field.upper()
        if old in present and new not in present:
            pairs.append((old, new))
    return pairs


# pydantic-settings matches names case-insensitively: so does this check.
_OUR_LINE = re.compile(rb"^[ \t]*(?:export[ \t]+)?(?:CREDSEAL|VAULT)_[A-Za-z_]*[ \t]*=",
                       re.M | re.I)


def check_dotenv(path: str | os.PathLike[str]) -> None:
    """Refuse a ``.env`` that holds credseal settings (``CREDSEAL_*`` or the old ``VAULT_*``)
    unless it is owned by this user or root and not writable by group or others: whoever can
    write it chooses the key source, the KDF profile and the directory (ssh's rule for its
    own configuration). A missing or unreadable file is left to pydantic-settings.

    Raises:
        ConfigurationError: naming the file and what is wrong, never its content.
    """
    try:
        st = os.stat(path)
        with open(path, "rb") as stream:
            head = stream.read(64 * 1024 * 1024)  # the whole file, whatever its size
    except OSError:
        return
    if not _OUR_LINE.search(head):
        return
    where = os.fspath(path)
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigurationError(f"{where} sets credseal settings but is owned by uid "
                                 f"{st.st_uid}, not by this user or root",
                                 hint=f"check who wrote it; then chown {os.geteuid()} {where}")
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise ConfigurationError(f"{where} sets credseal settings but group or others may "
                                 f"write it (mode {stat.S_IMODE(st.st_mode):o})",
                                 hint=f"check its content; then chmod go-w {where}")


#: Where a service manager or container runtime puts secret files: systemd's
#: ``LoadCredential=`` (``$CREDENTIALS_DIRECTORY``) and the usual container secrets mount.
CONTAINER_SECRETS = "/run/secrets"
_MAX_SECRET_FILE = 64 * 1024
logger = logging.getLogger("vault.config")


def _secret_from_file(field: str, value: SecretStr | None, path: Path | None,
                      prefix: str = "CREDSEAL_") -> SecretStr | None:
    """``CREDSEAL_<FIELD>`` from ``CREDSEAL_<FIELD>_FILE``, else from ``credseal_<field>`` in
    ``$CREDENTIALS_DIRECTORY`` or the container secrets directory; None to keep ``value``.

    A file is used only if owned by this user or root (container secrets are root's) and not
    writable by group or others; a world-readable one gets a warning. Its content, one line
    (trailing newline removed), is never shown.

    Raises:
        ConfigurationError: both the variable and its file are set, or the file is unusable.
    """
    variable = prefix + field.upper()
    if path is not None and value is not None:
        raise ConfigurationError(f"both {variable} and {variable}_FILE are set",
                                 hint="keep one of them")
    if value is not None:
        return None
    if path is None:
        found = [Path(d) / f"{prefix.lower()}{field}" for d in
                 (os.environ.get("CREDENTIALS_DIRECTORY"), CONTAINER_SECRETS) if d]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            return None
    where = os.fspath(path)
    try:
        data, st = files.read_secret_file(where, _MAX_SECRET_FILE)
    except OSError as exc:
        raise ConfigurationError(f"{variable}_FILE {where} cannot be read ({exc.strerror})",
                                 hint="check the path and that this user may read it") from None
    if not stat.S_ISREG(st.st_mode) or len(data) > _MAX_SECRET_FILE:
        raise ConfigurationError(f"{where} is not a regular file of at most "
                                 f"{_MAX_SECRET_FILE} bytes", hint=f"check {variable}_FILE")
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigurationError(f"{where} holds {variable} but is owned by uid {st.st_uid}, "
                                 "not by this user or root",
                                 hint="whoever owns it chooses the keys: check who wrote it")
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise ConfigurationError(f"{where} holds {variable} but group or others may write it "
                                 f"(mode {stat.S_IMODE(st.st_mode):o})",
                                 hint=f"check its content; then chmod go-w {where}")
    if stat.S_IMODE(st.st_mode) & 0o004:
        logger.warning("%s holds %s and is readable by every user (mode %o): chmod o-r it",
                       where, variable, stat.S_IMODE(st.st_mode))
    try:
        text = data.decode("utf-8").removesuffix("\n").removesuffix("\r")
        text = text.removeprefix(f"{variable}=")  # the form `--output FILE` writes
    except UnicodeDecodeError:
        raise ConfigurationError(f"{where} is not UTF-8 text", hint=f"check {variable}_FILE"
                                 ) from None
    if not text.strip():
        raise ConfigurationError(f"{where} is empty", hint=f"check {variable}_FILE")
    return SecretStr(text)


class _LegacySettings(BaseSettings):
    """The pre-rename ``VAULT_*`` names, read exactly as the settings are (environment and
    ``.env`` by pydantic-settings, empty values unset); only which are set is used."""

    model_config = SettingsConfigDict(
        env_prefix=LEGACY_PREFIX, env_file=".env", env_file_encoding="utf-8",
        env_ignore_empty=True, extra="ignore", frozen=True, hide_input_in_errors=True)

    dir: SecretStr | None = None
    ttl: SecretStr | None = None
    key_source: SecretStr | None = None
    keys: SecretStr | None = None
    keyring_service: SecretStr | None = None
    passphrase: SecretStr | None = None
    kdf_profile: SecretStr | None = None
    primary: SecretStr | None = None
    primary_table: SecretStr | None = None


BACKEND_PREFIX = "CREDSEAL_BACKEND_"
KEYRING_BACKEND = "vault.integrations.keyring_backend.CredsealKeyring"


def keyring_backend_configured() -> bool:
    """Whether ``keyring`` was told to use credseal's backend: ``PYTHON_KEYRING_BACKEND``, or
    the ``default-keyring`` of keyring's configuration file, names it (the check of the
    entry-point module ``_credseal_keyring``, which must stay cheap to import)."""
    from _credseal_keyring import configured

    return configured()


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float | None:
    """Seconds of ``90d``, ``12h``, ``30m``, ``2w`` or ``45s`` (None if it is not one): the
    one duration syntax of the settings and the commands."""
    match = _DURATION.fullmatch(text.strip().lower())
    return None if match is None else float(match.group(1)) * _UNITS[match.group(2)]


class VaultSettings(BaseSettings):
    """credseal's settings (see the module docstring for the variables).

    Values passed as keyword arguments win over the environment, which wins over ``.env``;
    ``VaultSettings(_env_file=None)`` ignores ``.env``. Empty variables count as unset.

    Raises:
        ConfigurationError: a value cannot be used (one line, no value quoted), or a
            pre-rename ``VAULT_*`` setting is set without its ``CREDSEAL_*`` twin.
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True,
        extra="ignore", frozen=True, hide_input_in_errors=True)

    dir: Path | None = None
    ttl: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    key_source: KeySourceKind | None = None
    keys: SecretStr | None = None
    keyring_service: str = Field(default=DEFAULT_SERVICE, min_length=1)
    passphrase: SecretStr | None = None
    kdf_profile: str | None = None
    primary: SecretStr | None = None
    primary_table: str | None = None
    keys_file: Path | None = None
    passphrase_file: Path | None = None
    primary_sealed: bool = False
    redis_url: SecretStr | None = None
    redis_sentinels: str | None = None
    redis_service: str | None = None
    redis_namespace: str = Field(default="credseal", min_length=1, max_length=64)

    def __init__(self, **values: Any) -> None:
        env_file = values.get("_env_file", type(self).model_config.get("env_file"))
        if isinstance(env_file, str | os.PathLike):
            check_dotenv(env_file)
        prefix = type(self).model_config.get("env_prefix") or PREFIX
        try:
            super().__init__(**values)
            sources = {key: value for key, value in values.items() if key == "_env_file"}
            old = (_LegacySettings(**sources).model_fields_set if prefix == PREFIX
                   else set[str]())  # the old names exist for the service's settings only
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc, prefix), hint=_HINT) from None
        except (SettingsError, UnicodeDecodeError):
            raise ConfigurationError("the CREDSEAL_ settings could not be read (is .env "
                                     "valid UTF-8 text?)", hint=_HINT) from None
        for field in ("keys", "passphrase"):  # frozen: set once, here, from a file
            secret = _secret_from_file(field, getattr(self, field),
                                       getattr(self, f"{field}_file"), prefix)
            if secret is not None:
                self.__dict__[field] = secret
        stale = [(LEGACY_PREFIX + field.upper(), PREFIX + field.upper())
                 for field in sorted(old - self.model_fields_set)]
        if stale:
            raise ConfigurationError(
                "credvault is now credseal and its settings are named CREDSEAL_*: "
                + "; ".join(f"{was} is set but {now} is not" for was, now in stale),
                hint="rename the variables (in the environment or .env): "
                     + ", ".join(f"{was} -> {now}" for was, now in stale))

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl_duration(cls, value: object) -> object:
        """``CREDSEAL_TTL`` takes seconds (``86400``) or a duration (``1d``, ``12h``), the
        syntax of ``rotate --if-older-than``."""
        if isinstance(value, str) and value.strip() and not value.strip()[-1].isdigit():
            seconds = parse_duration(value)
            return value if seconds is None else seconds
        return value

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
            ConfigurationError: ``CREDSEAL_DIR`` is not set.
        """
        prefix = type(self).model_config.get("env_prefix") or PREFIX
        if self.dir is None:
            raise ConfigurationError(f"{prefix}DIR is not set: expected the vault directory "
                                     "path", hint=f"export {prefix}DIR=/var/lib/<service>/vault "
                                                  "(or pass --dir)")
        return self.dir

    def require_key_source(self) -> KeySourceKind:
        """Return ``key_source``.

        Raises:
            ConfigurationError: ``CREDSEAL_KEY_SOURCE`` is not set.
        """
        prefix = type(self).model_config.get("env_prefix") or PREFIX
        if self.key_source is None:
            raise ConfigurationError(f"{prefix}KEY_SOURCE is not set: expected one of env, "
                                     "keyring, passphrase",
                                     hint="keys.md in the documentation (`credseal --help` says "
                                          "where) helps to choose where the keys live")
        return self.key_source


class BackendSettings(VaultSettings):
    """The settings of the keyring backend (``vault.integrations.keyring_backend``): the same
    fields as :class:`VaultSettings` under ``CREDSEAL_BACKEND_`` (``CREDSEAL_BACKEND_DIR``,
    ``CREDSEAL_BACKEND_KEY_SOURCE``, ``CREDSEAL_BACKEND_PASSPHRASE``, ...), so that the
    backend never shares a vault with a service by accident. No ``.env`` is read: the backend
    loads in pip, twine and every tool that asks keyring, in whatever directory they run."""

    model_config = SettingsConfigDict(
        env_prefix=BACKEND_PREFIX, env_file=None, env_file_encoding="utf-8",
        env_ignore_empty=True, extra="ignore", frozen=True, hide_input_in_errors=True)

    #: never the service's keyring service: the backend is a vault of its own
    keyring_service: str = Field(default="credseal-backend", min_length=1)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of ``CREDSEAL_*`` variables that are not settings (typos, usually)."""
    environ = os.environ if environ is None else environ
    known = {PREFIX + name.upper() for name in VaultSettings.model_fields}
    known |= {BACKEND_PREFIX + name.upper() for name in BackendSettings.model_fields}
    return sorted(name for name in environ
                  if name.upper().startswith(PREFIX) and name.upper() not in known)


def dotenv_variables(path: str | os.PathLike[str] = ".env") -> list[str]:
    """The names a ``.env`` file sets (empty if there is none): for ``diagnose``, which checks
    the file it read for typos too. Only names: values are never returned."""
    from dotenv import dotenv_values

    if not os.path.isfile(path):
        return []
    try:
        return sorted(dotenv_values(path, encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []


def near_miss(name: str) -> str | None:
    """The setting a mistyped ``CREDSEAL_*`` name most likely meant (``CREDSEAL_KEY_SORCE``
    -> ``CREDSEAL_KEY_SOURCE``), or None."""
    import difflib

    known = [PREFIX + field.upper() for field in VaultSettings.model_fields]
    found = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.8)
    return found[0] if found else None


def hashicorp_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of HashiCorp Vault's variables that are set (theirs: credseal ignores them)."""
    environ = os.environ if environ is None else environ
    return sorted(name for name in environ if name.upper() in HASHICORP_VARIABLES)


def current_context() -> Context:
    """Who acts and where, from the environment: the user (``getpass``), ``SUDO_USER``, the
    host name. Advisory (recorded in audit records, never trusted)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
        user = f"uid {os.geteuid()}"
    return Context(user=user, sudo_user=os.environ.get("SUDO_USER") or None,
                   host=socket.gethostname())


def source_from_settings(settings: VaultSettings, passphrase: bytes | str | None = None, *,
                         keyring_backend: Any = None) -> ManagedKeySource:
    """Return the one key source ``settings.key_source`` selects (no fallback to another).

    Args:
        settings: validated settings (``VaultSettings`` or ``BackendSettings``: messages name
            the variables of its prefix).
        passphrase: for the passphrase source; default ``settings.passphrase``.
        keyring_backend: for the keyring source, a ``keyring`` backend to use instead of
            keyring's default (the keyring backend names another one than itself).

    Raises:
        ConfigurationError: ``CREDSEAL_KEY_SOURCE`` or (for passphrase) ``CREDSEAL_DIR`` unset.
        KeySourceError: ``CREDSEAL_KEY_SOURCE=env`` without a valid ``CREDSEAL_KEYS``.
    """
    kind = settings.require_key_source()
    prefix = type(settings).model_config.get("env_prefix") or PREFIX
    if kind == "env":
        if settings.keys is None:
            raise KeySourceError(f"{prefix}KEY_SOURCE=env but {prefix}KEYS is not set",
                                 hint=f"run `credseal init` and put the CREDSEAL_KEYS line it "
                                      f"prints in your secret manager, as {prefix}KEYS")
        return EnvKeySource(settings.keys.get_secret_value())
    if kind == "keyring":
        # The default service name changed with the rename; one chosen on purpose did not.
        legacy = (LEGACY_SERVICE if "keyring_service" not in settings.model_fields_set
                  and prefix == PREFIX else None)
        return OSKeyringSource(settings.keyring_service, legacy_service=legacy,
                               backend=keyring_backend)
    if passphrase is None and settings.passphrase is not None:
        passphrase = settings.passphrase.get_secret_value()
    return PassphraseKeySource(settings.require_dir(), passphrase,
                               profile=settings.kdf_profile or kdf.DEFAULT_PROFILE)


def open_primary(settings: VaultSettings | None = None, *, keys: Any = None,
                 migrating: bool = False) -> Source:
    """The primary source that ``CREDSEAL_PRIMARY`` names (for the CLI's ``journal resolve
    --apply``, ``rotate`` and ``migrate --primary``, and ``open_cache``).

    With ``CREDSEAL_PRIMARY_SEALED`` set (or ``migrating``) its rows are sealed envelopes:
    ``keys`` (a ring or key source; default: the settings' key source) seals and opens them.

    ``sqlite:///<absolute path>`` opens a :class:`~vault.sources.SQLiteSource` (the file must
    exist); ``postgresql://...`` (or ``postgres://``) a ``vault.sources.postgres``
    ``PostgresSource`` (needs the ``postgres`` extra). The URL is never shown in an error.

    Raises:
        ConfigurationError: the setting is missing or not such a URL.
    """
    settings = settings if settings is not None else VaultSettings()
    sealed: dict[str, Any] = {}
    if settings.primary_sealed or migrating:
        sealed = {"keys": keys if keys is not None else source_from_settings(settings),
                  "migrating": migrating}
    if settings.primary is None:
        raise ConfigurationError("CREDSEAL_PRIMARY is not set: expected the primary source's "
                                 "URL", hint="export CREDSEAL_PRIMARY=sqlite:///var/lib/app/app"
                                             ".db (or postgresql://...)")
    url = settings.primary.get_secret_value()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite://")
        if not os.path.isabs(path):
            raise ConfigurationError("CREDSEAL_PRIMARY: a sqlite URL needs an absolute path "
                                     "(sqlite:///<path>)")
        if settings.primary_table is None:
            return SQLiteSource(path, **sealed)
        return SQLiteSource(path, table=settings.primary_table, **sealed)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from vault.sources.postgres import PostgresSource  # an optional extra
        except ImportError:
            raise ConfigurationError("CREDSEAL_PRIMARY names PostgreSQL but psycopg is not "
                                     "installed", hint="pip install 'credseal[postgres]'") from None
        if settings.primary_table is None:
            return PostgresSource(url, **sealed)
        return PostgresSource(url, table=settings.primary_table, **sealed)
    raise ConfigurationError("CREDSEAL_PRIMARY: expected sqlite:///<path> or postgresql://...")


def _sentinels(text: str) -> list[tuple[str, int]]:
    pairs = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError("CREDSEAL_REDIS_SENTINELS: expected host:port pairs, "
                                     "comma-separated")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def open_shared(settings: VaultSettings | None = None) -> RedisTier | None:
    """The fleet's shared tier the settings name: ``CREDSEAL_REDIS_URL``, or
    ``CREDSEAL_REDIS_SENTINELS`` with ``CREDSEAL_REDIS_SERVICE``; None when neither is set.
    Builds the client only (it connects on first use, so a Redis outage is no error here).

    Raises:
        ConfigurationError: both or half of them set, a bad value, or redis-py missing.
    """
    settings = settings if settings is not None else VaultSettings()
    if settings.redis_url is None and settings.redis_sentinels is None:
        if settings.redis_service is not None:
            raise ConfigurationError("CREDSEAL_REDIS_SERVICE is set without "
                                     "CREDSEAL_REDIS_SENTINELS")
        return None
    if settings.redis_url is not None and settings.redis_sentinels is not None:
        raise ConfigurationError("set CREDSEAL_REDIS_URL or CREDSEAL_REDIS_SENTINELS, not both")
    try:
        from vault.cache.redis import RedisTier  # an optional extra
    except ImportError:
        raise ConfigurationError("a shared tier is configured but redis-py is not installed",
                                 hint="pip install 'credseal[redis]'") from None
    if settings.redis_url is not None:
        return RedisTier.from_url(settings.redis_url.get_secret_value(),
                                  namespace=settings.redis_namespace)
    assert settings.redis_sentinels is not None
    if not settings.redis_service:
        raise ConfigurationError("CREDSEAL_REDIS_SENTINELS needs CREDSEAL_REDIS_SERVICE (the "
                                 "master's service name)")
    return RedisTier.from_sentinel(_sentinels(settings.redis_sentinels),
                                   settings.redis_service, namespace=settings.redis_namespace)


def open_cache(settings: VaultSettings | None = None, *,
               passphrase: bytes | str | None = None) -> FallbackCache:
    """The :class:`~vault.cache.FallbackCache` the settings describe: the primary
    (``CREDSEAL_PRIMARY``), the vault (``CREDSEAL_DIR`` and the key source) and, when
    configured, the shared tier (``CREDSEAL_REDIS_*``), so that services and the CLI reach
    the same places. The caller closes the cache, then ``cache.source`` and ``cache.shared``.

    Raises:
        as :func:`open_primary`, :func:`open_vault` and :func:`open_shared`.
    """
    from vault.cache import FallbackCache

    settings = settings if settings is not None else VaultSettings()
    source = open_primary(settings)
    try:
        shared = open_shared(settings)
        try:
            return FallbackCache(source, open_vault(settings, passphrase=passphrase),
                                 shared=shared, host=current_context().host)
        except BaseException:
            if shared is not None:
                shared.close()
            raise
    except BaseException:
        close = getattr(source, "close", None)
        if close is not None:
            close()
        raise


def open_vault(settings: VaultSettings | None = None, *, passphrase: bytes | str | None = None,
               create: bool = False) -> Vault:
    """Build the :class:`~vault.Vault` that the settings describe.

    Args:
        settings: default ``VaultSettings()`` (environment and ``.env``).
        passphrase: for ``CREDSEAL_KEY_SOURCE=passphrase``; default ``CREDSEAL_PASSPHRASE``.
        create: make the directory if it is missing (default: refuse, so that a mistyped
            ``CREDSEAL_DIR`` is an error rather than a new, empty vault).

    Raises:
        ConfigurationError: a setting is missing or invalid, or the directory is missing
            (without ``create``).
        KeySourceError: the keys cannot be loaded (with a hint).
        InsecureFileError: the vault directory is not private.
    """
    settings = settings if settings is not None else VaultSettings()
    directory = settings.require_dir()
    if not create and not os.path.lexists(directory):
        raise ConfigurationError(f"vault directory {directory} does not exist",
                                 hint="check CREDSEAL_DIR, or create the vault with "
                                      "`credseal init` (or open_vault(create=True))")
    source = source_from_settings(settings, passphrase)
    if settings.ttl is None:
        return Vault(directory, keys=source)
    return Vault(directory, keys=source, ttl=settings.ttl)
