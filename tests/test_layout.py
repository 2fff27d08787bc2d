"""Tests of the package layout: the public surface, the import order, and who may do what.

Each rule of the layout is checked here on the source (with ``ast``), so that a change that
breaks one fails the suite: public names only where a path has no underscore, every public
``__all__`` pinned, imports one way with no cycle (lazy and TYPE_CHECKING imports count), and
the few modules allowed to touch cryptography, files, the environment or the terminal.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import vault
import vault.errors
import vault.testing

PACKAGE = Path(vault.__file__).parent
ROOT = PACKAGE.parent

# Lowest first; a room may import only rooms of a lower rank (and itself). config and testing
# share a rank: neither may import the other. "vault" is the root __init__, exempt as importer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",), ("_clock",), ("codec",), ("_files",), ("_crypto",), ("keysources",),
    ("_store",), ("sources",), ("cache",), ("config", "testing"), ("ops",), ("integrations",),
    ("vault",), ("cli",), ("__main__",))
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}

PINNED: dict[str, set[str]] = {
    "vault": {
        "AsyncFallbackCache", "CacheEvent", "CircuitBreaker", "ConfigurationError",
        "DecryptionError", "Entry", "EntryExpiredError", "EntryInfo", "EntryNotFoundError",
        "FallbackCache", "Fetched", "FormatError", "InsecureFileError", "InvalidKeyError", "Key",
        "KeyInUseError", "KeyRing", "KeySource", "KeySourceError", "KeyState", "LockTimeoutError",
        "ManagedKeySource", "MigrationError", "RewrapError", "RewrapReport",
        "RotationInProgressError", "SQLiteSource", "SaveResult", "Scan", "SerializationError",
        "SharedTierError", "SourceUnavailableError", "UnknownKeyError", "Vault", "VaultError",
        "__version__", "codec", "open_cache", "open_vault"},
    "vault.codec": {"DIALECTS", "MAX_DEPTH", "Value", "dumps", "loads"},
    "vault.errors": {
        "ConfigurationError", "DecryptionError", "EntryExpiredError", "EntryNotFoundError",
        "FormatError", "InsecureFileError", "InvalidKeyError", "KeyInUseError", "KeySourceError",
        "LockTimeoutError", "MigrationError", "RewrapError", "RotationInProgressError",
        "SerializationError", "SharedTierError", "SourceUnavailableError", "UnknownKeyError",
        "VaultError"},
    "vault.cache": {
        "AsyncFallbackCache", "CACHE_UNUSABLE", "CACHE_WRITE_FAILED", "CLOSED", "CacheEvent",
        "CircuitBreaker", "DEGRADED", "FallbackCache", "Fetched", "HALF_OPEN", "JOURNALED",
        "JOURNAL_BLOCKED", "JOURNAL_CONFLICT", "OPEN", "Pending", "QUARANTINED", "RECOVERED",
        "PrefetchReport", "REPLAYED", "SHARED_RECOVERED", "SHARED_REJECTED", "SHARED_SKIPPED",
        "SHARED_UNAVAILABLE", "STILL_DEGRADED", "SaveResult", "SharedTarget", "SharedTier",
        "shared_target"},
    "vault.cache.redis": {"DEFAULT_NAMESPACE", "DEFAULT_TIMEOUT", "MAX_CALL_SECONDS",
                          "MIN_SERVER_VERSION", "AsyncRedisTier", "LoopBridge", "RedisTier",
                          "ServerInfo"},
    "vault.sources": {"ABSENT", "AsyncConditionalSource", "AsyncSource", "AsyncVersionedSource",
                      "ConditionalSource", "SQLiteSource", "Source", "TableTarget",
                      "ThreadedAsyncSource", "VersionedSource", "check_storable", "is_outage",
                      "supports_versions", "value_digest"},
    "vault.sources.sqlite": {"DEFAULT_TABLE", "SQLiteSource"},
    "vault.sources.postgres": {"AsyncPostgresSource", "DEFAULT_CONNECT_TIMEOUT",
                               "DEFAULT_STATEMENT_TIMEOUT", "DEFAULT_TABLE", "PostgresSource"},
    "vault.keysources": {
        "ACTIVE", "Binding", "BoundKeySource", "DECRYPT_ONLY", "DEFAULT_SERVICE", "EnvKeySource",
        "KEYFILE_NAME", "KeySource", "KeyState", "LEGACY_SERVICE", "MAX_DIRS", "MAX_INDEX_CHARS",
        "ManagedKeySource", "NO_KEYRING_HINT", "OSKeyringSource", "PassphraseKeySource",
        "RETIRED"},
    "vault.config": {
        "BACKEND_PREFIX", "BackendSettings", "KEYRING_BACKEND", "keyring_backend_configured",
        "Context", "HASHICORP_VARIABLES", "KeySourceKind", "LEGACY_PREFIX", "PREFIX",
        "VaultSettings", "check_dotenv", "current_context", "dotenv_variables",
        "hashicorp_variables", "near_miss",
        "legacy_variables", "open_cache", "open_primary", "open_shared", "open_vault",
        "parse_duration",
        "source_from_settings", "unknown_variables"},
    "vault.ops": {
        "Check", "DiagnoseReport", "EntryCheck", "EntryListing", "HostUsage", "InitResult",
        "InspectReport",
        "JournalItem", "JournalReport", "KeyUsage", "ListReport", "delete_entry", "list_entries",
        "quarantine_entry", "PrunePlan", "PruneResult", "Report", "RetireResult",
        "RotationResult", "StatusReport", "VerifyReport", "apply_prune", "bind_directory",
        "change_passphrase",
        "check_unused", "diagnose", "init_vault", "inspect_entry", "journal_report",
        "plan_prune", "resolve_conflicts", "retire", "rewrap_targets", "rotate", "status",
        "PrimaryMigration", "migrate_primary",
        "verify", "write_metrics"},
    "vault.integrations": set(),
    "vault.integrations.pydantic_settings": {"CredsealSettingsSource"},
    "vault.integrations.otel": {"Instrumentation", "instrument", "rewrap_progress"},
    "vault.integrations.keyring_backend": {"CredsealKeyring", "MAX_NAME_CHARS",
                                           "MAX_PASSWORD_BYTES"},
    "vault.integrations.baileys": {
        "EXISTS", "FAILED", "IMPORTED", "MAX_SOURCE_SIZE", "MISMATCH", "MigrationError",
        "MigrationPlan", "MigrationResult", "Outcome", "PRESENT", "PlannedEntry", "Skipped",
        "apply", "export_auth_folder", "export_cache_file", "export_node", "plan_auth_folder",
        "plan_cache_file", "remove_plaintext", "verify", "write_cache_file"},
    "vault.cli": {"build_parser", "main"},
    "vault.testing": {"AsyncMemorySource", "AsyncSourceContract", "AsyncVersionedSourceContract",
                      "MemorySource", "MemoryTier", "SharedTierContract", "SourceContract",
                      "VersionedSourceContract", "cheap_kdf_profile"},
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


MODULES = dict(_modules())


def _public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split(".")[1:])


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vault"


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every ``vault.*`` module imported anywhere in ``path`` (also inside functions and
    ``if TYPE_CHECKING``), with the line; ``from vault.x import y`` counts ``vault.x.y`` when
    that is a module, else ``vault.x``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "vault" or alias.name.startswith("vault."):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            base = node.module or ""
            if base != "vault" and not base.startswith("vault."):
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                yield (target if target in MODULES else base), node.lineno


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _ in _imports(path):
            # Importing vault.a.b also runs vault.a (not the root, which imports everything).
            # Its own ancestors are already being imported: not an edge.
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                implied = ".".join(parts[:i])
                if not (name == implied or name.startswith(implied + ".")):
                    graph[name].add(implied)
            if target == "vault":
                graph[name].add("vault")
    return graph


def test_every_public_module_has_a_pinned_all() -> None:
    """Each public package and module has an ``__all__``, and it is exactly the pinned set."""
    public = sorted(name for name in MODULES if _public(name) and name != "vault.__main__")
    assert sorted(PINNED) == public, "a public module was added or removed: pin its __all__"
    for name in public:
        module = importlib.import_module(name)
        assert set(module.__all__) == PINNED[name], f"{name}.__all__ changed"
        assert len(module.__all__) == len(set(module.__all__)), f"{name}.__all__ has twins"
        for attr in module.__all__:
            assert hasattr(module, attr), f"{name}.__all__ names {attr}, which is missing"


def test_private_modules_are_not_reexported_by_name() -> None:
    """No public ``__all__`` hands out a private module or a name starting with an underscore."""
    for name, names in PINNED.items():
        module = importlib.import_module(name)
        for attr in names - {"__version__"}:
            assert not attr.startswith("_"), f"{name}.{attr}"
            value = getattr(module, attr)
            if inspect.ismodule(value):
                assert _public(value.__name__), f"{name}.{attr} is private {value.__name__}"


def test_imports_go_one_way() -> None:
    """A module imports only rooms below its own (lazy and TYPE_CHECKING imports included)."""
    wrong = []
    for name, path in MODULES.items():
        room = _room(name)
        if room == "vault":
            continue  # the curated root imports from every room
        for target, line in _imports(path):
            other = _room(target)
            if other != room and RANK[other] >= RANK[room]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {room} imports {target}")
    assert wrong == []


def test_there_is_no_import_cycle() -> None:
    """The module import graph (every import counted, lazy ones too) has no cycle."""
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "vault" or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_layer_test_sees_every_room() -> None:
    """Every room of the package has a rank (a new room must be placed in LAYERS)."""
    assert {_room(name) for name in MODULES} <= set(RANK)
    assert set(RANK) - {_room(name) for name in MODULES} == set()


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def _calls(path: Path) -> Iterator[tuple[ast.Call, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                yield node, func.id
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                yield node, f"{func.value.id}.{func.attr}"
            elif isinstance(func, ast.Attribute):
                yield node, f"?.{func.attr}"


def _outside(*allowed: str) -> Iterator[tuple[str, Path]]:
    for name, path in MODULES.items():
        if not any(name == a or name.startswith(a + ".") for a in allowed):
            yield name, path


def test_only_crypto_imports_cryptography_argon2_and_hmac() -> None:
    """``cryptography``, ``argon2`` and ``hmac`` are imported in ``vault._crypto`` only."""
    wrong = []
    for _, path in _outside("vault._crypto"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                      if n.split(".")[0] in {"cryptography", "argon2", "hmac"}]
    assert wrong == []


OS_FILE_CALLS = {
    "open", "write", "pwrite", "ftruncate", "replace", "rename", "renames", "unlink", "remove",
    "rmdir", "removedirs", "mkdir", "makedirs", "mkfifo", "mknod", "utime", "chmod", "fchmod",
    "chown", "fchown", "lchown", "link", "symlink", "truncate", "fdopen"}
FILE_CALLS = {f"os.{name}" for name in OS_FILE_CALLS}
PATH_WRITES = {"write_text", "write_bytes", "unlink", "mkdir", "touch", "rmdir", "chmod",
               "symlink_to", "hardlink_to", "rename"}
FILE_MODULES = {"shutil", "tempfile"}


def _forbidden_file_call(call: ast.Call, what: str) -> bool:
    owner, _, attr = what.rpartition(".")
    return (what in FILE_CALLS or owner in FILE_MODULES
            or (owner not in {"", "os"} and attr in PATH_WRITES)
            or (what == "open" and _writing_open(call))
            or (owner not in {"", "os"} and attr == "open" and _constant_writing_mode(call)))


def _constant_writing_mode(call: ast.Call) -> bool:
    """``x.open("w")`` or ``x.open(mode="a")`` (a Path's open); other ``open`` methods (the
    store's own ``open(name, now)``) take no mode."""
    mode = call.args[0] if call.args else next(
        (k.value for k in call.keywords if k.arg == "mode"), None)
    return (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
            and bool(set(mode.value) & set("wax+")))


def _writing_open(call: ast.Call, mode_at: int = 1) -> bool:
    mode = call.args[mode_at] if len(call.args) > mode_at else next(
        (k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return False
    return not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                and not set(mode.value) & set("wax+"))


def test_only_files_opens_writes_renames_or_removes() -> None:
    """File system changes go through ``vault._files`` (the SQLite source's own database file,
    which sqlite3 opens, is the one exception: it creates that file once)."""
    wrong = []
    for name, path in _outside("vault._files"):
        for call, what in _calls(path):
            allowed = name == "vault.sources.sqlite" and what == "os.open"
            if _forbidden_file_call(call, what) and not allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{call.lineno}: {what}")
        wrong += _from_imports(path, {"os": OS_FILE_CALLS, "shutil": None, "tempfile": None,
                                      "io": {"open"}})
    assert wrong == []


def _from_imports(path: Path, names: dict[str, set[str] | None]) -> list[str]:
    """``from M import n`` lines importing a listed name of M (None: any name of M)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in names:
            allowed = names[node.module]
            found += [f"{_where(path)}:{node.lineno}: from {node.module} import "
                      f"{a.name}" for a in node.names if allowed is None or a.name in allowed]
    return found


def test_the_file_rule_would_catch_a_stray_write(tmp_path: Path) -> None:
    """The scanner of the file rule finds each kind of forbidden call in a sample."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nos.rename('a', 'b')\nopen('f', 'w')\nopen('f')\n"
                      "p.write_text('x')\nos.utime('f')\np.rename('q')\np.open('a')\n"
                      "p.open()\nshutil.rmtree('d')\ns.replace('a', 'b')\n"
                      "from os import replace as rp\n")
    found = [what for call, what in _calls(sample) if _forbidden_file_call(call, what)]
    assert found == ["os.rename", "open", "p.write_text", "os.utime", "p.rename", "p.open",
                     "shutil.rmtree"]
    assert _from_imports(sample, {"os": OS_FILE_CALLS}) == [f"{sample}:12: from os import replace"]


def test_only_config_reads_the_environment() -> None:
    """Environment variables, the login name and the host name are read in vault.config only."""
    assert _environment_reads(_outside("vault.config")) == []


ENV_NAMES = {"environ", "environb", "getenv", "putenv", "getuser", "gethostname", "getlogin"}


def _environment_reads(modules: Iterator[tuple[str, Path]]) -> list[str]:
    wrong = []
    for _, path in modules:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ENV_NAMES:
                wrong.append(f"{_where(path)}:{node.lineno}: {node.attr}")
        wrong += _from_imports(path, {"os": ENV_NAMES, "socket": ENV_NAMES,
                                      "getpass": ENV_NAMES})
    return wrong


def test_only_the_cli_prints_prompts_or_exits() -> None:
    """``print``, ``input``, ``getpass.getpass`` and ``sys.exit`` appear in vault.cli only."""
    assert _terminal_uses(_outside("vault.cli", "vault.__main__")) == []


def _terminal_uses(modules: Iterator[tuple[str, Path]]) -> list[str]:
    wrong = []
    for _, path in modules:
        tree = ast.parse(path.read_text(), str(path))
        for call, what in _calls(path):
            if what in {"print", "input", "exit", "quit", "getpass.getpass", "sys.exit",
                        "os._exit", "breakpoint", "?.write"} and not (
                    what == "?.write" and "std" not in ast.unparse(call.func)):
                wrong.append(f"{_where(path)}:{call.lineno}: {what}")
        wrong += [f"{_where(path)}:{node.lineno}: SystemExit" for node in ast.walk(tree)
                  if isinstance(node, ast.Raise) and node.exc is not None
                  and "SystemExit" in ast.unparse(node.exc)]
        wrong += _from_imports(path, {"getpass": {"getpass"}, "sys": {"exit", "stdout",
                                                                      "stderr"}})
    return wrong


def test_the_environment_and_terminal_rules_would_catch_a_stray_use(tmp_path: Path) -> None:
    """The scanners of those two rules find each kind of use in a sample module."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os, sys\nos.environ.get('X')\nfrom socket import gethostname\n"
                      "print('x')\nsys.stderr.write('y')\nraise SystemExit(1)\n"
                      "from getpass import getpass\nbuf.write(b'z')\n")
    assert [w.rsplit(": ", 1)[1] for w in _environment_reads(iter([("s", sample)]))] == [
        "environ", "from socket import gethostname"]
    assert sorted(w.rsplit(": ", 1)[1] for w in _terminal_uses(iter([("s", sample)]))) == [
        "?.write", "SystemExit", "from getpass import getpass", "print"]


def _error_classes() -> set[type[vault.VaultError]]:
    for name in MODULES:  # every module imported: a subclass defined anywhere is seen
        importlib.import_module(name if name != "vault.__main__" else "vault.cli")
    found: set[type[vault.VaultError]] = set()
    todo: list[type[vault.VaultError]] = [vault.VaultError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_lives_in_errors_and_is_exported() -> None:
    """Each VaultError subclass is defined in vault.errors, in its __all__, exported from
    vault, and drawn in the tree of the module docstring."""
    doc = vault.errors.__doc__ or ""
    classes = {cls for cls in _error_classes() if cls.__module__.startswith("vault")}
    assert len(classes) >= 17
    for cls in classes:
        assert cls.__module__ == "vault.errors", cls
        assert cls.__name__ in vault.errors.__all__
        assert getattr(vault, cls.__name__) is cls
        assert f" {cls.__name__}" in doc, f"{cls.__name__} is missing from the tree"
        assert cls.__doc__, cls


def test_no_bare_vault_error_is_raised() -> None:
    """Code raises a specific subclass, never ``VaultError`` itself."""
    wrong = []
    for _, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and ast.unparse(node.exc.func).split(".")[-1] == "VaultError"):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert wrong == []


def test_deprecated_aliases_warn_and_still_work(tmp_path: Path) -> None:
    """Vault.rotate, RewrapReport.rotated and vault.RotationReport warn and keep working."""
    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(tmp_path / "v", keys=ring)
    v.put("a", 1)
    with pytest.warns(DeprecationWarning, match="Vault.rewrap"):
        report = vault.Vault(v.directory, keys=ring.with_primary(vault.Key.generate())).rotate()
    assert report.rewrapped == 1
    with pytest.warns(DeprecationWarning, match="rewrapped"):
        assert report.rotated == 1
    with pytest.warns(DeprecationWarning, match="RewrapReport"):
        assert vault.RotationReport is vault.RewrapReport
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(v.rewrap(), vault.RewrapReport)  # the new names do not warn
    with pytest.raises(AttributeError):
        vault.NoSuchName  # noqa: B018


def test_vault_testing_imports_without_pytest() -> None:
    """A service can import vault.testing without pytest; the contract suites then say why not."""
    code = ("import sys; sys.modules['pytest'] = None\n"
            "import vault.testing as t\n"
            "assert t.MemorySource().load('x') is None\n"
            "try:\n    t.SourceContract\nexcept ImportError:\n    print('suites need pytest')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "suites need pytest"
    assert vault.testing.SourceContract.__name__ == "SourceContract"  # with pytest: available



