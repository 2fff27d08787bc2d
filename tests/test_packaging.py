"""Tests of the distribution: the wheel builds offline, holds what it should, and works when
installed in a fresh virtual environment outside the checkout."""

from __future__ import annotations

import email.parser
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import vault
from vault.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("vault", "_credseal_keyring.py", "docs", "pyproject.toml", "README.md", "LICENSE",
           "SECURITY.md", "CHANGELOG.md")
DOCS = {"README.md", "SECURITY.md", "CHANGELOG.md", "LICENSE", "keys.md", "operations.md",
        "migration.md", "security.md", "format.md", "upgrading.md", "cli-json.md",
        "integrations.md"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the project's sources, without downloading anything."""
    tree = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, tree / name)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "-w", str(out), str(tree)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("credseal-*.whl")
    return built


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


def test_wheel_metadata_is_complete(wheel: Path) -> None:
    """Name, version, SPDX license, classifiers, keywords, Python floor and console script."""
    meta = _metadata(wheel)
    assert meta["Name"] == "credseal" and meta["Version"] == vault.__version__
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = set(meta.get_all("Classifier") or [])
    for wanted in ("Topic :: Security :: Cryptography", "Typing :: Typed",
                   "Programming Language :: Python :: 3.11", "Operating System :: POSIX :: Linux"):
        assert wanted in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # the SPDX field says it
    assert "credentials" in (meta["Keywords"] or "")
    assert meta["Author"] is None and meta["Author-email"] is None and meta["Project-URL"] is None
    requires = meta.get_all("Requires-Dist") or []
    assert {r.split(">=")[0] for r in requires if "extra" not in r} == {
        "cryptography", "keyring", "pydantic-settings", "argon2-cffi"}
    with zipfile.ZipFile(wheel) as archive:
        points = archive.read(next(n for n in archive.namelist()
                                   if n.endswith("entry_points.txt"))).decode()
    assert re.search(r"^credseal = vault\.cli:main$", points, re.M)
    assert re.search(r"^credseal = _credseal_keyring:load_if_configured$", points, re.M)


def test_wheel_holds_the_package_the_docs_and_nothing_else(wheel: Path) -> None:
    """Every module of vault/ and py.typed, the license, the docs as data; no tests, no
    benchmarks, no examples."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "vault").rglob("*.py")}
    assert modules <= names and "vault/py.typed" in names
    docs = {n.rsplit("/", 1)[1] for n in names if "/share/doc/credseal/" in n}
    assert docs == DOCS
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"vault", "_credseal_keyring.py", f"credseal-{vault.__version__}.dist-info",
                    f"credseal-{vault.__version__}.data"}


def test_help_names_only_documents_that_are_shipped() -> None:
    """Every ``*.md`` that a help text of any command names is in the wheel's documentation."""
    parser = build_parser()
    texts = [parser.format_help()]
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        texts += [sub.format_help() for sub in action.choices.values()]  # type: ignore[union-attr]
    named = set(re.findall(r"[\w./-]+\.md\b", "\n".join(texts)))
    assert named and named <= DOCS, named - DOCS
    assert "docs/" not in "\n".join(texts)


def test_installed_wheel_runs_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """In a fresh venv (dependencies borrowed from this one, the package from the wheel),
    ``credseal --help`` runs from outside the checkout and points at installed documents."""
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                   timeout=120)
    python = env_dir / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    # This venv's site-packages as a plain path: its .pth files (our editable install) stay off.
    (Path(site.strip()) / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    where = subprocess.run([str(python), "-c", "import vault; print(vault.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(env_dir)
    helped = subprocess.run([str(env_dir / "bin" / "credseal"), "--help"], capture_output=True,
                            text=True, cwd=tmp_path, env=env, timeout=60)
    assert helped.returncode == 0, helped.stderr
    match = re.search(r"^documentation: (\S+)$", helped.stdout, re.M)
    assert match is not None, helped.stdout
    docs = Path(match.group(1))
    assert docs.is_relative_to(env_dir) and {p.name for p in docs.iterdir()} == DOCS
    for name in re.findall(r"[\w.-]+\.md\b", helped.stdout):
        assert (docs / name).is_file(), name
    version = subprocess.run([str(python), "-m", "vault", "--version"], capture_output=True,
                             text=True, cwd=tmp_path, env=env, timeout=60)
    assert version.stdout.strip() == f"credseal {vault.__version__}"
