"""The everyday commands of ``credseal``: init, status, inspect, verify, diagnose, passwd."""

from __future__ import annotations

import argparse
import sys

import vault
from vault import ops
from vault.cli._console import (
    EXIT_FAILED,
    EXIT_OK,
    Console,
    age,
    command,
    moment,
    open_keyed,
    output_argument,
    weak_passphrase_argument,
)
from vault.errors import ConfigurationError


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    output_argument(parser)
    weak_passphrase_argument(parser)
    parser.add_argument("--join", action="store_true",
                        help="add this directory to the vault the key source already serves "
                             "(keyring, or env with CREDSEAL_KEYS set) instead of making a key")


@command("init", json=True, arguments=_init_arguments,
         help="create the vault directory and its first key", epilog="""\
Refuses a directory that already holds entries, journal records, a keyfile or a vault state,
and a keyring service that already serves a vault (pick another CREDSEAL_KEYRING_SERVICE, or
--join it). A failed init removes what it created.

examples:
  # environment: prints CREDSEAL_KEYS=... once; store it in your secret manager
  CREDSEAL_DIR=/var/lib/app/vault CREDSEAL_KEY_SOURCE=env credseal init
  # OS keyring (Secret Service, Keychain, Credential Locker)
  CREDSEAL_DIR=/var/lib/app/vault CREDSEAL_KEY_SOURCE=keyring credseal init
  # passphrase keyfile: asks for a new passphrase (or reads CREDSEAL_PASSPHRASE / stdin)
  CREDSEAL_DIR=/var/lib/app/vault CREDSEAL_KEY_SOURCE=passphrase credseal init
  # a second directory of the vault the keyring service already serves
  CREDSEAL_DIR=/srv/other/vault CREDSEAL_KEY_SOURCE=keyring credseal init --join
""")
def cmd_init(args: argparse.Namespace, con: Console) -> int:
    con.check_output()
    settings = con.settings()
    passphrase = None
    if settings.key_source == "passphrase" and not args.join:
        given = settings.passphrase.get_secret_value() if settings.passphrase else None
        passphrase = con.new_passphrase(given, allow_weak=args.allow_weak_passphrase)
    result = ops.init_vault(settings, passphrase=passphrase, join=args.join)
    if args.json:
        data = {"directory": str(result.directory), "source": result.source,
                "key_id": result.key_id, "vault_id": result.vault_id, "joined": result.joined}
        if result.key_text is not None and not args.output:
            data["keys"] = f"CREDSEAL_KEYS={result.key_text}"  # shown once, on purpose
        elif result.key_text is not None:
            con.secret_line(f"CREDSEAL_KEYS={result.key_text}", "store it in your secret "
                            "manager now: it is stored nowhere else")
        con.emit_json(data)
    elif result.joined and result.source == "env":  # the environment records no vault id
        con.out(f"joined {result.directory}: it uses the environment's keys (key "
                f"{result.key_id} active); its own vault state is {result.vault_id}")
    elif result.joined:
        con.out(f"joined {result.directory} to vault {result.vault_id}; key {result.key_id} "
                f"of the {result.source} key source is active")
    elif result.key_text is not None:
        con.secret_line(f"CREDSEAL_KEYS={result.key_text}", "store it in your secret manager "
                        "now: it is stored nowhere else and never shown again")
        con.note(f"created {result.directory} with key {result.key_id}")
    else:
        con.out(f"created {result.directory}; key {result.key_id} is active in the "
                f"{result.source} key source")
    return EXIT_OK


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", action="store_true",
                        help="print the directory's metrics in Prometheus' text format")
    parser.add_argument("--output", metavar="FILE",
                        help="with --prometheus: write them to FILE atomically (mode 644), "
                             "for node_exporter's textfile collector")


@command("status", json=True, arguments=_status_arguments,
         help="key ids and states, entries per key, ages, problems", epilog="""\
Needs no key: computed from entry headers read without decryption (unverified).

examples:
  credseal status
  credseal status --json | jq '.keys'
  credseal status --prometheus --output /var/lib/node_exporter/textfile/credseal.prom
""")
def cmd_status(args: argparse.Namespace, con: Console) -> int:
    if args.output and not args.prometheus:
        raise ConfigurationError("status --output needs --prometheus",
                                 hint="credseal status --prometheus --output FILE")
    report = ops.status(con.settings())
    if args.prometheus:
        text = report.prometheus()
        if args.output:
            ops.write_metrics(args.output, text)
        else:
            con.stdout.write(text)
        return EXIT_OK
    if args.json:
        con.emit_json({**report.to_dict(), "ok": report.ok})
        return EXIT_OK if report.ok else EXIT_FAILED
    con.out(f"vault       {report.directory}")
    con.out(f"entries     {report.entries} (oldest {age(report.oldest_age_seconds)}, newest "
            f"{age(report.newest_age_seconds)})")
    con.out(f"expired     {report.expired_unverified} (from unverified headers; "
            "`credseal verify` authenticates)")
    con.out(f"journal     {report.journal_pending} pending (oldest "
            f"{age(report.journal_oldest_age_seconds)}), {report.journal_conflicts} conflicts")
    if report.rotation is not None:
        con.out(f"rotation    {report.rotation} (from rotation.lock, unverified)")
    if report.shared_error is not None:
        con.out(f"shared      error: {report.shared_error}")
    elif report.shared_records is not None:
        by_key = ", ".join(f"{n} under {key}" for key, n in sorted(report.shared_records.items()))
        con.out(f"shared      {sum(report.shared_records.values())} records"
                + (f" ({by_key})" if by_key else ""))
    if report.primary_error is not None:
        con.out(f"primary     error: {report.primary_error}")
    elif report.primary_rows is not None:
        by_key = ", ".join(f"{n} {'plaintext' if key == 'plaintext' else 'under ' + key}"
                           for key, n in sorted(report.primary_rows.items()))
        con.out(f"primary     {sum(report.primary_rows.values())} rows"
                + (f" ({by_key})" if by_key else ""))
    for host in report.shared_hosts:
        keys = sorted(set(host.entries) | set(host.journal))
        con.out(f"host        {host.host_id}  {host.host}:{host.directory}  "
                f"{'reported' if host.recent else 'NOT reported since'} "
                f"{moment(host.reported_at)}  keys {', '.join(keys) or 'none'}")
    con.out(f"key source  {report.key_source or 'error: ' + str(report.key_source_error)}")
    if report.kdf_profile:
        con.out(f"kdf         {report.kdf_profile}")
    for key in report.keys:
        con.out(f"key         {key.id}  {key.state or 'unknown to the key source':<13}  "
                f"created {moment(key.created_at)}  entries {key.entries}")
    for warning in report.warnings:
        con.out(f"warning     {warning}")
    for problem in report.problems:
        con.out(f"problem     {problem}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the entry name")


@command("inspect", json=True, arguments=_name_argument,
         help="header fields of one entry (unverified); never the value", epilog="""\
examples:
  credseal inspect db/password
  credseal inspect db/password --json
""")
def cmd_inspect(args: argparse.Namespace, con: Console) -> int:
    report = ops.inspect_entry(con.settings(), args.name)
    if args.json:
        con.emit_json(report.to_dict())
        return EXIT_OK
    for label, value in (("name", report.name), ("file", report.file),
                         ("key id", report.key_id), ("created at", moment(report.created_at)),
                         ("expires at", moment(report.expires_at)),
                         ("valid until", moment(report.valid_until)),
                         ("size", f"{report.size} bytes"),
                         ("expired", "yes" if report.expired_unverified else "no")):
        con.out(f"{label:<12}{value}")
    con.out("(header fields read without a key: unverified; `credseal verify` "
            "authenticates them)")
    return EXIT_OK


def _names_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="verify only these entries (default: every entry)")


@command("verify", json=True, arguments=_names_argument,
         help="open every entry (or the named ones): ok, expired or failed", epilog="""\
Exit code 1 if any entry failed to open (a named entry that does not exist fails). Needs the
keys (and the passphrase for a keyfile).

examples:
  credseal verify
  credseal verify db/password company/42
  credseal verify --json < passphrase.txt    # piped stdin: the passphrase, one line
""")
def cmd_verify(args: argparse.Namespace, con: Console) -> int:
    settings = con.settings()
    report = ops.verify(settings, passphrase=con.passphrase(settings),
                        names=args.names or None)
    failed = report.count("failed")
    if args.json:
        con.emit_json({**report.to_dict(), "summary": {
            status: report.count(status) for status in ("ok", "expired", "failed")}})
    else:
        for check in report.checks:
            con.out(f"{check.status:<8} {check.name}" + (f": {check.detail}" if check.detail
                                                         else ""))
        con.out(f"{len(report.checks)} entries: {report.count('ok')} ok, "
                f"{report.count('expired')} expired, {failed} failed ({report.seconds:.2f} s)")
        con.out(f"audit log: {report.audit_lines} lines, {report.audit_verified} verified, "
                f"{report.audit_unverifiable} unverifiable"
                + (f"; PROBLEM: {report.audit_problem}" if report.audit_problem else ""))
        if report.primary_checked is not None:
            for name, why in report.primary_failures:
                con.out(f"failed   primary row {name!r}: {why}")
            con.out(f"primary: {report.primary_checked} rows, "
                    f"{len(report.primary_failures)} failed")
    return EXIT_FAILED if failed or report.audit_problem or report.primary_failures \
        else EXIT_OK


@command("ls", json=True, help="list the entries: names, key ids, times (unverified)",
         epilog="""\
Needs no key: from entry headers read without decryption (unverified); never a value.

examples:
  credseal ls
  credseal ls --json | jq -r '.entries[].name'
""")
def cmd_ls(args: argparse.Namespace, con: Console) -> int:
    report = ops.list_entries(con.settings())
    if args.json:
        con.emit_json(report.to_dict())
    else:
        for entry in report.entries:
            con.out(f"{entry.name}  key {entry.key_id}  created {moment(entry.created_at)}  "
                    f"{'expired' if entry.expired_unverified else 'valid'}")
        for problem in report.problems:
            con.out(f"problem  {problem}")
    return EXIT_FAILED if report.problems else EXIT_OK


@command("delete", arguments=_name_argument,
         help="delete one entry from this directory (audited)", epilog="""\
Removes this directory's copy only: the primary database still holds the credential, and the
next healthy read writes a new copy. A name that does not exist is an error (exit 4).

examples:
  credseal delete company/42
""")
def cmd_delete(args: argparse.Namespace, con: Console) -> int:
    _, v = open_keyed(con)
    ops.delete_entry(v, args.name)
    con.out(f"deleted {args.name!r} from {v.directory}")
    return EXIT_OK


@command("quarantine", arguments=_name_argument,
         help="move one entry into quarantine/ (kept, never read; audited)", epilog="""\
For an entry you suspect: it is never read again and is kept for inspection; `credseal
prune` removes old quarantined files. The next healthy read writes a new copy.

examples:
  credseal quarantine company/42
""")
def cmd_quarantine(args: argparse.Namespace, con: Console) -> int:
    _, v = open_keyed(con)
    path = ops.quarantine_entry(v, args.name)
    con.out(f"moved {args.name!r} to {path}")
    return EXIT_OK


@command("diagnose", json=True, help="check settings, vault directory, keyring backend",
         epilog="""\
Shows which keyring backend was found, whether the settings are valid and where the vault
lives; never a key. Exit code 1 if a check is an error.

examples:
  credseal diagnose
  credseal diagnose --json
""")
def cmd_diagnose(args: argparse.Namespace, con: Console) -> int:
    report = ops.diagnose(con.overrides())
    if args.json:
        con.emit_json({**report.to_dict(), "ok": report.ok, "version": vault.__version__})
    else:
        con.out(f"credseal {vault.__version__} (Python {sys.version.split()[0]})")
        for check in report.checks:
            con.out(f"{check.level:<8} {check.name}: {check.detail}")
            if check.hint:
                con.out(f"{'':<8} hint: {check.hint}")
    return EXIT_OK if report.ok else EXIT_FAILED


@command("passwd", arguments=weak_passphrase_argument,
         help="change the keyfile's passphrase (rewraps the keyfile only)", epilog="""\
Asks for the current passphrase (or uses CREDSEAL_PASSPHRASE), then the new one twice. With
piped stdin: one line per passphrase asked. Entries are untouched. Afterwards, update
CREDSEAL_PASSPHRASE wherever services read it, and restart them.

examples:
  credseal passwd
  printf '%s\\n%s\\n' "$OLD" "$NEW" | credseal passwd
""")
def cmd_passwd(args: argparse.Namespace, con: Console) -> int:
    settings = con.settings()
    if settings.require_key_source() != "passphrase":
        raise ConfigurationError("passwd applies to CREDSEAL_KEY_SOURCE=passphrase only")
    current = con.passphrase(settings) or ""
    new = con.new_passphrase(None, allow_weak=args.allow_weak_passphrase, missing=(
        "the new passphrase is missing: CREDSEAL_PASSPHRASE (or the first line of stdin) is the "
        "current one, and stdin holds no line for the new one"))
    ops.change_passphrase(settings, current=current, new=new)
    con.out(f"passphrase changed: {settings.require_dir()}/keyfile.json rewrapped with a new "
            "salt; entries untouched")
    con.note("update CREDSEAL_PASSPHRASE wherever services read it, then restart them")
    return EXIT_OK


