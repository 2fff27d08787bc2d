"""The maintenance commands of ``credseal``: rotate, retire, prune, migrate, export.

Registered with ``vault.cli._console.command``; ``vault.cli._app`` owns parsing, errors and
exit codes. The work, audit records included, is in ``vault.ops`` and
``vault.integrations.baileys``; here are arguments, progress, summaries and exit codes.

Exit codes added here: 5 nothing to do (``rotate``: the primary key is younger than
``--if-older-than``, or every entry is already under it), 75 another rotation is running.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from vault import ops
from vault.cli._console import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_TO_DO,
    EXIT_OK,
    EXIT_TERMINATED,
    Console,
    command,
    duration,
    open_keyed,
    output_argument,
    progress_bar,
    shared_targets,
)
from vault.config import open_primary
from vault.errors import ConfigurationError, RotationInProgressError
from vault.integrations import baileys


def _rotate_arguments(parser: argparse.ArgumentParser) -> None:
    output_argument(parser)
    parser.add_argument("--rewrap-only", action="store_true",
                        help="only rewrap entries to the current primary key (resume, or the "
                             "second step with CREDSEAL_KEY_SOURCE=env)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--if-older-than", type=duration, metavar="AGE",
                      help="rotate only if the primary key is older than AGE (90d, 12h, ...)")
    when.add_argument("--to", metavar="KEY_ID", dest="to_key_id",
                      help="promote a key the source still holds (the previous one) and rewrap "
                           "to it: the way back after a rotation")


class _Terminated(Exception):
    """SIGTERM arrived during a rotation."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


@command("rotate", json=True, arguments=_rotate_arguments,
         help="add and promote a new key, then rewrap every entry (resumable)", epilog="""\
keyring and passphrase sources: one command adds a new key, promotes it and rewraps every
entry and journal record; running services pick the new key up by themselves.
env source: prints the new CREDSEAL_KEYS (new key first, old keys kept) and stops; deploy it to
every service, then run `credseal rotate --rewrap-only`.
A killed rotation is resumed by running the same command again.

exit codes: 0 rotated; 5 nothing to do; 1 some entries failed; 75 another rotation runs.

examples:
  credseal rotate
  credseal rotate --if-older-than 90d        # for a daily cron job or systemd timer
  credseal rotate --rewrap-only --json
  credseal rotate --to 3f2a9c1e0b7d4a56      # roll back to the previous key
""")
def cmd_rotate(args: argparse.Namespace, con: Console) -> int:
    con.check_output()
    source, v = open_keyed(con)
    extra, close_shared = shared_targets(con, v, source)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        result = ops.rotate(v, source, rewrap_only=args.rewrap_only,
                            if_older_than=args.if_older_than, to_key_id=args.to_key_id,
                            progress=progress_bar(con), extra_targets=extra)
    except (_Terminated, KeyboardInterrupt) as exc:
        stopped = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        con.note(f"{stopped}: the rotation stopped before its end; every entry still opens. "
                 "Run the same command again to resume it.")
        return EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
    except RotationInProgressError as exc:
        con.note(f"error: {exc.message}")
        if exc.hint:
            con.note(f"hint: {exc.hint}")
        return EXIT_BUSY
    finally:
        close_shared()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if result.outcome == "published" and args.json:
        assert result.new_ring is not None
        data: dict[str, Any] = {"outcome": "published", "old_key_id": result.old_key_id,
                                "new_key_id": result.new_key_id}
        if args.output:
            con.secret_line(f"CREDSEAL_KEYS={result.new_ring.to_text()}", "deploy it, then "
                            "run `credseal rotate --rewrap-only`")
        else:
            data["keys"] = f"CREDSEAL_KEYS={result.new_ring.to_text()}"  # to deploy
        con.emit_json(data)
        return EXIT_OK
    if result.outcome == "published":
        assert result.new_ring is not None
        con.secret_line(f"CREDSEAL_KEYS={result.new_ring.to_text()}", "store it in your "
                        "secret manager, deploy it to every service, then run `credseal "
                        "rotate --rewrap-only`")
        con.note(f"new key {result.new_key_id} is first; {result.old_key_id} stays decrypt-only")
        return EXIT_OK
    if result.resumed and result.old_key_id == result.new_key_id and not args.rewrap_only \
            and args.to_key_id is None:
        con.note("warning: no new key was made: an unfinished rewrap to the deployed key "
                 f"{result.new_key_id} was finished first; run rotate again to publish a new "
                 "key" + (" (nothing was written to --output)" if args.output else ""))
    data = _rotation_dict(result)
    if args.json:
        con.emit_json(data)
    else:
        _print_rotation(con, result)
    if result.outcome == "failed":
        con.note("hint: fix or quarantine the items listed as failed, then run "
                 "`credseal rotate --rewrap-only` (a plain rotate would make another key)")
        return EXIT_FAILED
    return EXIT_NOTHING_TO_DO if result.outcome in ("current", "not-due") else EXIT_OK


def _rotation_dict(result: ops.RotationResult) -> dict[str, Any]:
    def report(r: Any) -> dict[str, Any]:
        return {"rewrapped": r.rewrapped, "current": r.current, "failed": r.failed,
                "skipped": r.skipped, "by_key": r.by_key,
                "failures": [{"name": n, "reason": why} for n, why in r.failures]}
    data = {"outcome": result.outcome, "old_key_id": result.old_key_id,
            "new_key_id": result.new_key_id, "entries": report(result.entries),
            "journal": report(result.journal), "seconds": round(result.seconds, 3),
            "resumed": result.resumed is not None}
    for extra in ("shared", "primary"):
        if extra in result.reports:
            data[extra] = report(result.reports[extra])
    return data


def _print_rotation(con: Console, result: ops.RotationResult) -> None:
    if result.resumed:
        con.note(f"resumed an unfinished rotation to key {result.new_key_id} (it had reached "
                 f"{result.resumed.get('phase', '?')})")
    if result.outcome == "not-due":
        con.out(f"nothing to do: key {result.old_key_id} is younger than --if-older-than"
                if result.new_key_id == result.old_key_id else
                f"nothing to do: key {result.new_key_id} was published and is not deployed yet")
        return
    e, j = result.entries, result.journal
    if result.old_key_id == result.new_key_id:  # --rewrap-only: no key changed
        con.out(f"{result.outcome}: rewrapped to key {result.new_key_id} in "
                f"{result.seconds:.1f} s")
    else:
        con.out(f"{result.outcome}: {result.old_key_id} -> {result.new_key_id} in "
                f"{result.seconds:.1f} s")
    con.out(f"entries   {e.rewrapped} rewrapped, {e.current} already current, {e.failed} failed, "
            f"{e.skipped} skipped")
    for key_id, count in sorted(e.by_key.items()):
        con.out(f"  from    {key_id}: {count}")
    con.out(f"journal   {j.rewrapped} rewrapped, {j.current} already current, {j.failed} failed")
    shared = result.reports.get("shared")
    if shared is not None:
        con.out(f"shared    {shared.rewrapped} rewrapped, {shared.current} already current, "
                f"{shared.failed} failed, {shared.skipped} skipped (changed meanwhile, or "
                "forged and removed)")
    primary = result.reports.get("primary")
    if primary is not None:
        con.out(f"primary   {primary.rewrapped} rows rewrapped, {primary.current} already "
                f"current, {primary.failed} failed, {primary.skipped} skipped (written "
                "meanwhile)")
    for name, why in (*e.failures, *j.failures, *(shared.failures if shared else ()),
                      *(primary.failures if primary else ())):
        con.out(f"failed    {name}: {why}")


def _retire_arguments(parser: argparse.ArgumentParser) -> None:
    output_argument(parser)
    parser.add_argument("--forget", metavar="PATH", action="append", default=[],
                        help="a directory of this vault that is gone for good (repeatable): "
                             "forget it instead of refusing because it cannot be checked")
    parser.add_argument("--forget-host", metavar="HOST_ID", action="append", default=[],
                        help="a fleet host that is gone for good (repeatable): remove its "
                             "usage report from the shared tier (`credseal status` lists them)")
    parser.add_argument("--all-directories-checked", action="store_true",
                        help="you rewrapped every directory of this vault yourself (needed "
                             "when the key source had to forget some)")
    parser.add_argument("key_id", help="the id of the key to retire (16 hex digits)")


@command("retire", json=True, arguments=_retire_arguments,
         help="retire a key once no entry or journal record uses it", epilog="""\
Refuses while entries or journal records are still sealed under the key (run
`credseal rotate --rewrap-only` first), in this directory and in every other directory of the
vault that the keyring source lists (this host's; gone ones are forgotten). keyring and
passphrase sources: the key's material is dropped and its record kept. env source: prints
CREDSEAL_KEYS without the key, to deploy.

examples:
  credseal retire 3f2a9c1e0b7d4a56
""")
def cmd_retire(args: argparse.Namespace, con: Console) -> int:
    con.check_output()
    source, v = open_keyed(con)
    extra, close_shared = shared_targets(con, v, source)
    try:
        tiers = [t for t in extra if hasattr(t, "forget_host")]
        if args.forget_host and not tiers:
            raise ConfigurationError("--forget-host needs the shared tier: set "
                                     "CREDSEAL_REDIS_URL (or CREDSEAL_REDIS_SENTINELS)")
        for host in args.forget_host:
            if not tiers[0].forget_host(host):
                raise ConfigurationError(f"no usage report of host {host!r:.40} in the shared "
                                         "tier", hint="`credseal status` lists the hosts")
            con.note(f"forgot host {host}: its usage report is gone from the shared tier")
        result = ops.retire(v, source, args.key_id, forget=args.forget,
                            all_checked=args.all_directories_checked, extra_targets=extra)
    finally:
        close_shared()
    if args.json:
        data: dict[str, Any] = {"key_id": result.key_id, "outcome": result.outcome,
                                "directories": list(result.directories),
                                "forgotten": list(result.forgotten)}
        if result.new_ring is not None and not args.output:
            data["keys"] = f"CREDSEAL_KEYS={result.new_ring.to_text()}"  # to deploy
        elif result.new_ring is not None:
            con.secret_line(f"CREDSEAL_KEYS={result.new_ring.to_text()}", "deploy it to "
                            "every service to retire the key")
        con.emit_json(data)
        return EXIT_OK
    for path in result.forgotten:
        con.note(f"forgot {path}: the key source listed it as a directory of this vault, but "
                 "it is gone (or another vault's now)")
    if result.outcome == "retired":
        con.out(f"retired {result.key_id}: nothing in {len(result.directories)} "
                f"director{'y' if len(result.directories) == 1 else 'ies'} of this vault was "
                "sealed under it; its material is gone")
        return EXIT_OK
    assert result.new_ring is not None
    con.secret_line(f"CREDSEAL_KEYS={result.new_ring.to_text()}", "deploy it to every "
                    "service to retire the key")
    return EXIT_OK


def _journal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["resolve"],
                        help="resolve: settle the conflicts of one entry")
    parser.add_argument("name", nargs="?", help="the entry whose conflicts to settle")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--keep-primary", action="store_true",
                     help="keep the source's value: the conflicting records move to "
                          "quarantine/ (nothing is deleted)")
    how.add_argument("--apply", action="store_true",
                     help="write the newest conflicting value to the source named by "
                          "CREDSEAL_PRIMARY, over what it holds; the records move to "
                          "quarantine/")


@command("journal", json=True, arguments=_journal_arguments,
         help="list journaled writes and conflicts (names and times, never values)", epilog="""\
Without an action: every record waiting for the source and every conflict (a journaled
write replay refused because the source no longer held the value it was based on). Needs the
keys (entry names are sealed); changes nothing. Exit code 1 if there are conflicts.

examples:
  credseal journal
  credseal journal --json
  credseal journal resolve company/42 --keep-primary
  CREDSEAL_PRIMARY=sqlite:///var/lib/app/app.db credseal journal resolve company/42 --apply
""")
def cmd_journal(args: argparse.Namespace, con: Console) -> int:
    _, v = open_keyed(con, read_only=args.action is None)
    if args.action == "resolve":
        if not args.name or not (args.keep_primary or args.apply):
            raise ConfigurationError("journal resolve needs NAME and --keep-primary or --apply",
                                     hint="credseal journal resolve NAME --keep-primary")
        primary = open_primary(con.settings()) if args.apply else None
        try:
            settled = ops.resolve_conflicts(v, args.name, apply_to=primary)
        finally:
            close = getattr(primary, "close", None)
            if close is not None:
                close()
        con.out(f"settled {settled} conflict(s) of {args.name!r}: "
                + ("the newest journaled value is now the source's" if args.apply else
                   "the source's value stays") + "; the records are in quarantine/")
        return EXIT_OK
    if args.name or args.keep_primary or args.apply:
        raise ConfigurationError("NAME, --keep-primary and --apply go with `journal resolve`")
    report = ops.journal_report(v)
    if args.json:
        con.emit_json({**report.to_dict(), "pending": report.count("pending"),
                       "conflicts": report.count("conflict")})
    else:
        for item in report.items:
            what = (f"{item.op} {item.name!r} at {item.at}" if item.name is not None
                    else item.detail)
            con.out(f"{item.state:<11} {item.id}  {what}")
        con.out(f"{report.count('pending')} pending, {report.count('conflict')} conflicts, "
                f"{report.count('unreadable')} unreadable")
    return EXIT_FAILED if report.count("conflict") else EXIT_OK


def _prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quarantined-older-than", type=duration, metavar="AGE",
                        help="also remove quarantined files older than AGE (30d, ...)")
    parser.add_argument("--apply", action="store_true", help="remove (default: dry run)")


@command("prune", json=True, arguments=_prune_arguments,
         help="remove expired entries and old quarantined files (dry run by default)", epilog="""\
Only entries that authenticate and are past their validity window are removed; files that do
not open are listed and kept. Every --apply appends an audit record.

examples:
  credseal prune
  credseal prune --quarantined-older-than 30d --apply
""")
def cmd_prune(args: argparse.Namespace, con: Console) -> int:
    _, v = open_keyed(con)
    plan = ops.plan_prune(v, quarantine_older_than=args.quarantined_older_than)
    removed: tuple[str, ...] = ()
    gone = 0
    kept = plan.kept
    if args.apply:
        result = ops.apply_prune(v, plan)
        removed, gone, kept = result.removed_entries, result.removed_quarantined, result.kept
    if args.json:
        con.emit_json({"applied": args.apply, "expired": list(plan.expired),
                       "quarantined": [str(p) for p in plan.quarantined],
                       "removed_entries": list(removed), "removed_quarantined": gone,
                       "kept": [{"name": n, "reason": why} for n, why in kept]})
        return EXIT_OK
    verb = "removed" if args.apply else "would remove"
    for name in plan.expired:
        con.out(f"{verb:<13} entry {name}")
    for path in plan.quarantined:
        con.out(f"{verb:<13} {path}")
    for name, why in kept:
        con.out(f"{'kept':<13} {name}: {why}")
    con.out(f"{len(plan.expired)} expired entries and {len(plan.quarantined)} quarantined files"
            + ("" if args.apply else "; run again with --apply to remove them"))
    return EXIT_OK


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    origin = parser.add_mutually_exclusive_group(required=True)
    origin.add_argument("--from-cache-file", metavar="FILE",
                        help="the original service's JSON cache {companyId: {creds, keys, "
                             "timestamp}}")
    origin.add_argument("--from-auth-folder", metavar="DIR",
                        help="a Baileys multi-file auth folder (creds.json, pre-key-1.json, ...)")
    origin.add_argument("--primary", action="store_true",
                        help="seal the plaintext rows of the primary table (CREDSEAL_PRIMARY) "
                             "in place, in batches, resumable; then mark it sealed")
    parser.add_argument("--prefix", help="entry name prefix (default: company for a cache "
                                         "file; required for an auth folder)")
    parser.add_argument("--include-expired", action="store_true",
                        help="import expired records too, re-dated to now (see docs)")
    parser.add_argument("--bytes-by-shape", choices=["revive", "keep"],
                        help='objects with keys "0".."n-1" and ints 0-255 but no Buffer '
                             "marker (a Uint8Array's JSON, or a map of counters): revive "
                             "imports them as bytes, keep as objects. No default: the dry run "
                             "lists them and --apply refuses until you choose")
    parser.add_argument("--apply", action="store_true", help="import (default: dry run)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing entries")
    parser.add_argument("--remove-plaintext", action="store_true",
                        help="after a verified --apply, overwrite and delete the plaintext")
    parser.add_argument("--discard-skipped", action="store_true",
                        help="with --remove-plaintext: also destroy the records skipped as "
                             "expired or malformed (they exist only in the plaintext)")


def _migrate_primary(args: argparse.Namespace, con: Console) -> int:
    """``migrate --primary`` (``vault.ops.migrate_primary``)."""
    source, v = open_keyed(con)
    primary = open_primary(con.settings(), keys=source, migrating=True)
    try:
        done = ops.migrate_primary(v, primary, apply=args.apply, progress=progress_bar(con))
    finally:
        close = getattr(primary, "close", None)
        if close is not None:
            close()
    report = done.report
    if args.json:
        data: dict[str, Any] = {"applied": done.applied, "plaintext_rows": done.plaintext_rows,
                                "sealed_rows": done.sealed_rows, "marked": done.marked}
        if report is not None:
            data.update(rows=report.rewrapped, current=report.current, failed=report.failed,
                        skipped=report.skipped, failures=[{"name": n, "reason": why}
                                                          for n, why in report.failures])
        con.emit_json(data)
    elif report is None:
        con.out(f"dry run: {done.plaintext_rows} plaintext rows would be sealed; "
                f"{sum(done.sealed_rows.values())} rows are sealed already")
        con.note("run it again with --apply; services keep running (with "
                 "CREDSEAL_PRIMARY_SEALED and migrating=True until it is done)")
    else:
        con.out(f"sealed {report.rewrapped} rows ({report.current} already sealed, "
                f"{report.skipped} written meanwhile, {report.failed} failed)")
        for name, why in report.failures:
            con.out(f"failed    {name!r}: {why}")
        if done.marked:
            con.out("the table is marked sealed: no source reads a plaintext row of it now")
    return EXIT_OK if report is None or done.marked else EXIT_FAILED


@command("migrate", json=True, arguments=_migrate_arguments,
         help="import a plaintext credential cache into the vault (dry run by default)",
         epilog="""\
Dry run by default: lists what would be imported, never values. --apply imports with the
original timestamps and verifies that every entry opens to the same value; only then, with
--remove-plaintext, the plaintext is overwritten and deleted (refused while records skipped as
expired or malformed exist only there, unless --discard-skipped). Objects that are bytes only
by their shape ({"0": 5, "1": 7}) are listed by the dry run; --apply needs --bytes-by-shape
to say what they are. migration.md in the documentation is the runbook (`credseal --help`
says where it is).

examples:
  credseal migrate --primary                 # with CREDSEAL_PRIMARY: count what it would seal
  credseal migrate --primary --apply
  credseal migrate --from-cache-file /srv/app/creds-cache.json
  credseal migrate --from-cache-file /srv/app/creds-cache.json --bytes-by-shape=revive --apply
  credseal migrate --from-auth-folder ./auth_info --prefix wa/shop-1 --apply --remove-plaintext
""")
def cmd_migrate(args: argparse.Namespace, con: Console) -> int:
    """Plan, and with --apply import, verify and maybe remove the plaintext (see the epilog).

    Objects that are bytes by their shape alone have no default reading here: a wrong guess
    either way changes a credential's type without a sound (a counter map becomes bytes, or a
    Uint8Array key stays an object, which the service cannot use), and --remove-plaintext then
    destroys the only original. Which one is right depends on who wrote the source, which only
    the operator knows, so the dry run lists every such object (entry and JSON path, never a
    value) and --apply refuses until --bytes-by-shape says. A source without any (Baileys 7
    writes marked Buffers only) needs no flag.
    """
    if args.primary:
        return _migrate_primary(args, con)
    if args.remove_plaintext and not args.apply:
        raise ConfigurationError("--remove-plaintext needs --apply")
    if args.discard_skipped and not args.remove_plaintext:
        raise ConfigurationError("--discard-skipped goes with --apply --remove-plaintext")
    _, v = open_keyed(con)
    shape = args.bytes_by_shape or "revive"
    if args.from_cache_file:
        plan = baileys.plan_cache_file(args.from_cache_file, v,
                                       include_expired=args.include_expired,
                                       prefix="company" if args.prefix is None else args.prefix,
                                       bytes_by_shape=shape)
    else:
        if not args.prefix:
            raise ConfigurationError("--from-auth-folder needs --prefix (the entry name prefix)")
        plan = baileys.plan_auth_folder(args.from_auth_folder, v, prefix=args.prefix,
                                        include_expired=args.include_expired,
                                        bytes_by_shape=shape)
    undecided = bool(plan.by_shape) and args.bytes_by_shape is None
    if args.apply and undecided:
        if not args.json:
            _print_by_shape(con, plan, None)
        raise ConfigurationError(
            f"{_by_shape_count(plan)} are bytes only by their shape (keys \"0\"..\"n-1\", ints "
            "0-255, no Buffer marker); nothing was imported",
            hint="see them in the dry run, then add --bytes-by-shape=revive (Uint8Array JSON: "
                 "import them as bytes) or --bytes-by-shape=keep (import them as objects)")
    result = baileys.apply(plan, v, overwrite=args.overwrite) if args.apply else None
    removed = (baileys.remove_plaintext(plan, result, v, discard_skipped=args.discard_skipped)
               if result is not None and args.remove_plaintext else [])
    outcomes = {o.name: o for o in result.outcomes} if result else {}
    if args.json:
        con.emit_json({"applied": args.apply, "verified": bool(result and result.verified),
                       "entries": [{"name": e.name, "source": e.source, "size": e.size,
                                    "created_at": e.created_at.isoformat(),
                                    "exists": e.exists,
                                    "status": outcomes[e.name].status if outcomes else None}
                                   for e in plan.entries],
                       "skipped": [{"source": s.source, "kind": s.kind, "reason": s.reason}
                                   for s in plan.skipped],
                       "bytes_by_shape": args.bytes_by_shape,
                       "by_shape": [{"name": b.name, "source": b.source, "path": b.path,
                                     "length": b.length} for b in plan.by_shape],
                       "plaintext_removed": [str(p) for p in removed]})
    else:
        for e in plan.entries:
            state = outcomes[e.name].status if outcomes else "would import"
            con.out(f"{state:<13} {e.name}  ({e.size} bytes, created "
                    f"{e.created_at:%Y-%m-%d %H:%M:%S}Z{', exists' if e.exists else ''})")
        for s in plan.skipped:
            con.out(f"{'skipped':<13} {s.source}: {s.kind}: {s.reason}")
        _print_by_shape(con, plan, args.bytes_by_shape)
        for path in removed:
            con.out(f"{'removed':<13} {path}")
        if result is None:
            con.out(f"{len(plan.entries)} entries would be imported; run again with --apply"
                    + (" --bytes-by-shape=revive or keep" if undecided else ""))
    if undecided:
        con.note(f"warning: {_by_shape_count(plan)} are bytes only by their shape (listed as "
                 "'by shape?'): --apply needs --bytes-by-shape=revive (bytes) or "
                 "--bytes-by-shape=keep (objects)")
    return EXIT_FAILED if result is not None and not result.verified else EXIT_OK


def _by_shape_count(plan: baileys.MigrationPlan) -> str:
    shaped = plan.by_shape
    entries = len({b.name for b in shaped})
    return (f"{len(shaped)} object{'s' if len(shaped) != 1 else ''} in {entries} "
            f"entr{'ies' if entries != 1 else 'y'}")


def _print_by_shape(con: Console, plan: baileys.MigrationPlan, mode: str | None) -> None:
    """One line per object that is bytes by its shape alone: entry, path, length; no value."""
    label = {None: "by shape?", "revive": "as bytes", "keep": "kept object"}[mode]
    for b in plan.by_shape:
        keys = f'keys "0".."{b.length - 1}"' if b.length > 1 else 'key "0"'
        con.out(f"{label:<13} {b.name}  {b.path}  ({b.length} byte{'s' if b.length > 1 else ''}"
                f" by shape: {keys}, ints 0-255, no Buffer marker)")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", action="store_true", required=True,
                        help="write Baileys' JSON format (the only format for now)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--cache-file", nargs="+", metavar="NAME",
                      help="entries to write back as the original cache file")
    what.add_argument("--auth-folder", metavar="PREFIX",
                      help="write the entries under PREFIX back as a multi-file auth folder")
    parser.add_argument("--prefix", default="company", help="entry name prefix of a cache file")
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="file (cache file) or new directory (auth folder), created 0600/0700")


@command("export", arguments=_export_arguments,
         help="write entries back as plaintext in Baileys' format (rollback)", epilog="""\
Writes decrypted credentials to --output only (never to the terminal), created private; the
file must not exist yet. Use it to roll a migration back, then delete it.

examples:
  credseal export --node --cache-file company/42 company/43 --output ./cache.json
  credseal export --node --auth-folder wa/shop-1 --output ./auth_info
""")
def cmd_export(args: argparse.Namespace, con: Console) -> int:
    _, v = open_keyed(con)
    if args.cache_file:
        baileys.write_cache_file(v, args.cache_file, args.output, prefix=args.prefix)
        written = 1
    else:
        written = len(baileys.export_auth_folder(v, args.auth_folder, args.output,
                                                 new_directory=True))
    con.out(f"wrote {written} file(s) to {args.output}; delete them once the rollback is done")
    return EXIT_OK
