"""Tests of ``credseal completion bash|zsh``, ``credseal man`` and JSON errors (``--json``).

The scripts and the page are produced by the installed ``credseal`` and checked by the real
tools: bash sources the script and runs its completion function, ``zsh -n`` parses the zsh one,
groff renders the page with every warning on.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import vault.config
import vault.ops
from tests.helpers.clirunner import BIN
from tests.realparts import require
from vault.cli import _generate, build_parser, main

COMMANDS = sorted(_generate._commands(build_parser()))


def _clean_env(home: Path) -> dict[str, str]:
    """The test's environment without any credseal setting (old or new prefix)."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("CREDSEAL_", "VAULT_"))}
    return {**env, "HOME": str(home)}


def _credseal(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``credseal`` in ``home`` with no settings (and no ``.env``)."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=home,
                          env=_clean_env(home), timeout=60)


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bash script printed by ``credseal completion bash``, saved to a file."""
    home = tmp_path_factory.mktemp("bash")
    result = _credseal(home, "completion", "bash")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    path = home / "credseal.bash"
    path.write_text(result.stdout)
    return path


def _complete(script: Path, line: str, cwd: Path) -> list[str]:
    """What the completion function offers for the last word of ``line`` (in bash)."""
    words = line.split(" ")
    driver = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n_credseal\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", driver], capture_output=True,
                            text=True, cwd=cwd, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [word for word in result.stdout.splitlines() if word]


def test_bash_script_is_valid_bash(bash_script: Path) -> None:
    """``bash -n`` accepts the generated script, which registers a completion for credseal."""
    result = subprocess.run(["bash", "-n", str(bash_script)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "complete -o bashdefault -o default -F _credseal credseal" in bash_script.read_text()


@pytest.mark.parametrize(("line", "expected"), [
    ("credseal ro", ["rotate"]),
    ("credseal --dir /srv/v st", ["status"]),
    ("credseal rotate --re", ["--rewrap-only"]),
    ("credseal --debug journal ", ["resolve"]),
    ("credseal completion ", ["bash", "zsh"]),
    ("credseal migrate --from-auth-folder sub", ["subdir"]),
    ("credseal status --", ["--debug", "--dir", "--help", "--json", "--output", "--prometheus",
                            "--quiet"]),
])
def test_bash_completes_commands_options_and_choices(bash_script: Path, tmp_path: Path,
                                                     line: str, expected: list[str]) -> None:
    """Driven through COMP_WORDS/COMP_CWORD, the function offers what the parser accepts."""
    (tmp_path / "subdir").mkdir()
    assert sorted(_complete(bash_script, line, tmp_path)) == expected


def test_bash_offers_every_command(bash_script: Path, tmp_path: Path) -> None:
    """An empty command word completes to exactly the parser's subcommands."""
    assert sorted(_complete(bash_script, "credseal ", tmp_path)) == COMMANDS


def test_zsh_script_is_valid_zsh(tmp_path: Path) -> None:
    """``zsh -n`` accepts the generated script; sourced after compinit it registers itself."""
    result = _credseal(tmp_path, "completion", "zsh")
    assert result.returncode == 0 and result.stdout.startswith("#compdef credseal\n")
    for name in COMMANDS:
        assert f"({name})" in result.stdout
    if shutil.which("zsh") is None:
        require("zsh", "zsh is not installed: the script's syntax cannot be checked")
    script = tmp_path / "_credseal"
    script.write_text(result.stdout)
    check = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stderr
    loaded = subprocess.run(
        ["zsh", "-f", "-c", f"autoload -U compinit; compinit -u -D; source {script}; "
                            "print -r -- $_comps[credseal]"],
        capture_output=True, text=True, cwd=tmp_path, env=_clean_env(tmp_path), timeout=30)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "_credseal", loaded.stderr


def test_man_page_renders_without_warnings(tmp_path: Path) -> None:
    """The page names every command and section, and groff renders it with no warning."""
    result = _credseal(tmp_path, "man")
    assert result.returncode == 0 and result.stderr == ""
    page = result.stdout
    assert page.startswith(".TH CREDSEAL 1 ")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS",
                    "ENVIRONMENT"):
        assert f"\n.SH {section}\n" in page
    for name in COMMANDS:
        assert f"\n.SS {name}\n" in page
    for name in vault.config.VaultSettings.model_fields:
        assert f"\n.B CREDSEAL_{name.upper()}\n" in page
    assert "\n.B 75\n" in page and "\\-\\-rewrap\\-only" in page
    if shutil.which("groff") is None:
        require("groff", "groff is not installed: the page cannot be rendered")
    lint = subprocess.run(["groff", "-ww", "-z", "-man"], input=page, capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0 and lint.stderr == "", lint.stderr
    shown = subprocess.run(["groff", "-man", "-Tutf8", "-P-c", "-P-b", "-P-u"], input=page,
                           capture_output=True, text=True, timeout=60).stdout
    shown = " ".join(shown.split())  # justified lines have runs of spaces
    assert "credseal - keep service credentials encrypted at rest" in shown
    assert "credseal rotate --if-older-than 90d" in shown  # an example, copyable as shown
    assert "CREDSEAL_DIR" in shown and "another rotation is running" in shown


def test_roff_escaping_keeps_text_as_text() -> None:
    """Leading dots and apostrophes, backslashes and option hyphens are escaped for roff."""
    assert _generate._roff(".x\n'y\nC:\\dir --dry-run read-only -v") == (
        "\\&.x\n\\&'y\nC:\\edir \\-\\-dry\\-run read-only \\-v")
    assert _generate._roff("a-b", literal=True) == "a\\-b"


def test_json_error_is_one_json_object_on_stderr(tmp_path: Path) -> None:
    """``status --json`` without CREDSEAL_DIR prints the error as JSON on stderr and exits 2."""
    result = _credseal(tmp_path, "status", "--json")
    assert result.returncode == 2 and result.stdout == ""
    error = json.loads(result.stderr)
    assert set(error) == {"error", "hint", "exit_code"} and error["exit_code"] == 2
    assert "CREDSEAL_DIR is not set" in error["error"] and "--dir" in error["hint"]
    plain = _credseal(tmp_path, "status")
    assert plain.returncode == 2 and plain.stderr.startswith("credseal: error: CREDSEAL_DIR")


def test_json_error_without_hint_has_null_hint(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """An error with no hint (an OS error) gives ``"hint": null`` and its exit code, 4."""
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "v"))

    monkeypatch.setattr(vault.ops, "status", refuse)
    monkeypatch.chdir(tmp_path)  # no .env
    for name in [k for k in os.environ if k.upper().startswith(("CREDSEAL_", "VAULT_"))]:
        monkeypatch.delenv(name)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(["status", "--json", "--dir", str(tmp_path / "v")], stdin=io.StringIO(),
                stdout=stdout, stderr=stderr)
    assert code == 4 and stdout.getvalue() == ""
    assert json.loads(stderr.getvalue()) == {
        "error": f"Permission denied: {tmp_path / 'v'}", "hint": None, "exit_code": 4}
