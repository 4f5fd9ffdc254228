"""``gatekeeperctl audit``: review the audit trail (SPEC §6, issue 6).

Reads journald (the system journal, ``--namespace NS``, or the namespace of
the policy's ``[audit] journal_socket``) through ``journalctl -o json``, or the
file sink (``[audit] sink = "file"`` or ``--file PATH``), filters it, checks
every record against journald's own ``_UID``/``_PID``/``_EXE``/``_CMDLINE``
(:mod:`gatekeeper.review.auditread`) and prints a table, JSON lines, or one line per
guest session (``--sessions``: connect + join + leave).

Every table cell goes through :func:`gatekeeper.login.textsafe.escape`: a record is
attacker-controlled text until proven otherwise, and a forged one may carry
raw ESC sequences meant for the admin's terminal (SECURITY.md §25). JSON is
written with ``ensure_ascii=True``, which escapes control characters too.
"""

from __future__ import annotations

import argparse
import json
import pwd
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from gatekeeper.cli.common import add_policy_option
from gatekeeper.exitcodes import EX_CONFIG, EX_NOINPUT, EX_UNAVAILABLE, EX_USAGE
from gatekeeper.login.textsafe import escape
from gatekeeper.policy.model import DEFAULT_PATH, AuditConfig
from gatekeeper.review import auditread
from gatekeeper.review.auditread import Entry, Filters, GuestSession

DECISIONS: Final = ("allow", "deny", "error")
_FLAG: Final = {"trusted": "ok", "forged": "FORGED", "unverified": "UNVERIFIED"}

RECORD_COLUMNS: Final = (
    ("TIME", 19),
    ("TRUST", 6),
    ("EVENT", 7),
    ("DECISION", 8),
    ("USER", 12),
    ("PERSON", 10),
    ("FROM", 15),
    ("TARGET", 12),
    ("MODE", 10),
    ("REF", 16),
    ("REASON", 18),
    ("COMMAND", 0),
)
SESSION_COLUMNS: Final = (
    ("START", 19),
    ("TRUST", 6),
    ("USER", 12),
    ("PERSON", 10),
    ("FROM", 15),
    ("SESSION", 12),
    ("MODE", 10),
    ("DURATION", 9),
    ("ENDED", 10),
    ("REF", 16),
    ("RECORDINGS", 0),
)


class _UsageError(Exception):
    """Bad arguments (exit 64)."""


class _ConfigError(Exception):
    """The ``--policy`` given cannot be used (exit 78; the reason is already printed)."""


# --------------------------------------------------------------------------- rendering


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> str:
    """One table cell: escaped to printable ASCII, whatever the record holds."""
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return escape(str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _reason(entry: Entry) -> Any:
    record = entry.record
    if entry.event == "leave":
        ended = record.get("ended") or "left"
        return f"{ended} after {_duration(_number(record.get('duration_seconds')))}"
    if entry.event in {"kick", "revoke", "share"}:
        return f"by {record.get('by')}" if record.get("by") else record.get("changes")
    return record.get("reason")


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def record_row(entry: Entry) -> list[str]:
    """The escaped table cells of one record."""
    record = entry.record
    target = record.get("session") or record.get("program")
    command = record.get("original_command")
    if isinstance(command, str):
        command = auditread.unescape(command)
    if entry.trust != "trusted":
        command = f"[{entry.why}]" + ("" if command is None else f" {command}")
    return [
        _cell(_local(entry.time)),
        _cell(_FLAG[entry.trust]),
        _cell(record.get("event")),
        _cell(record.get("decision")),
        _cell(record.get("user")),
        _cell(record.get("person")),
        _cell(record.get("client_addr")),
        _cell(target),
        _cell(record.get("mode")),
        _cell(record.get("connection_id")),
        _cell(_reason(entry)),
        _cell(command),
    ]


def session_row(visit: GuestSession) -> list[str]:
    """The escaped table cells of one guest session."""
    return [
        _cell(_local(visit.start)),
        _cell(_FLAG[visit.trust]),
        _cell(visit.field("user")),
        _cell(visit.field("person")),
        _cell(visit.field("client_addr")),
        _cell(visit.field("session")),
        _cell(visit.field("mode")),
        _cell(_duration(visit.duration)),
        _cell(visit.ended),
        _cell(visit.field("connection_id")),
        _cell(",".join(visit.recordings) or None),
    ]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def table(columns: Sequence[tuple[str, int]], rows: Sequence[list[str]]) -> str:
    """Rows aligned under a header (cells are already escaped)."""
    heads = [name for name, _ in columns]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads)]
    return "".join(_line(r, widths) + "\n" for r in [heads, *rows])


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _json_line(data: Any) -> str:
    return json.dumps(data, ensure_ascii=True, sort_keys=True, default=str) + "\n"


# --------------------------------------------------------------------------- set-up


def _policy(args: argparse.Namespace) -> tuple[AuditConfig, dict[str, int], set[str]]:
    """The policy's ``[audit]`` table, session owners' uids and exec targets.

    Without a policy: the defaults, no owners (host-side events unverified)
    and no targets (any exec target but the interpreter is accepted).
    """
    from gatekeeper.policy import loader as policy_module  # noqa: PLC0415 - pydantic is heavy

    path = args.policy or DEFAULT_PATH
    try:
        loaded = policy_module.load(path)
    except policy_module.PolicyError as error:
        fatal = args.policy is not None and not (args.file or args.namespace)
        if fatal or args.policy is not None or error.kind != "missing":
            consequence = "" if fatal else " (host-side events stay unverified)"
            print(
                f"gatekeeperctl audit: cannot use the policy{consequence}: "
                f"{escape(error.render())}",
                file=sys.stderr,
            )
        if fatal:
            raise _ConfigError from error
        return (error.audit or AuditConfig()), {}, set()
    owners: dict[str, int] = {}
    for name, session in loaded.sessions.items():
        try:
            owners[name] = pwd.getpwnam(session.owner).pw_uid
        except KeyError:
            continue
    targets = {loaded.tmux_binary} | {p.argv[0] for p in loaded.programs.values() if p.argv}
    return loaded.audit, owners, targets


def _filters(args: argparse.Namespace) -> Filters:
    try:
        since = auditread.parse_time(args.since) if args.since else None
        until = auditread.parse_time(args.until) if args.until else None
    except ValueError as error:
        raise _UsageError(str(error)) from error
    return Filters(
        since=since,
        until=until,
        user=args.user,
        person=args.person,
        session=args.session,
        decision=args.decision,
        connection=args.connection,
        trusted_only=args.trusted_only,
    )


def _warn_file(path: str) -> None:
    if auditread.append_only(path) is False:
        print(
            f"gatekeeperctl audit: warning: {escape(path)} is not append-only "
            "(chattr +a): an account that may write it can also rewrite it; "
            "records from a file are never verified",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------- output


def _print_records(entries: Iterable[Entry], filters: Filters, *, as_json: bool) -> None:
    chosen = [e for e in entries if filters.match(e)]
    if as_json:
        _write("".join(_json_line(e.as_json()) for e in chosen))
    else:
        _write(table(RECORD_COLUMNS, [record_row(e) for e in chosen]))


def _print_sessions(entries: Iterable[Entry], filters: Filters, *, as_json: bool) -> None:
    visits = [v for v in auditread.join_sessions(entries) if auditread.session_matches(v, filters)]
    visits.sort(key=lambda v: v.start)
    if as_json:
        _write("".join(_json_line(v.as_json()) for v in visits))
    else:
        _write(table(SESSION_COLUMNS, [session_row(v) for v in visits]))


def _follow(stream: Iterable[Entry], filters: Filters, *, as_json: bool) -> None:
    if not as_json:
        widths = [w or len(n) for n, w in RECORD_COLUMNS]
        _write(_line([n for n, _ in RECORD_COLUMNS], widths) + "\n")
    for entry in stream:
        if not filters.match(entry):
            continue
        if as_json:
            _write(_json_line(entry.as_json()))
        else:
            _write(_line(record_row(entry), widths) + "\n")


def _run(args: argparse.Namespace) -> int:
    try:
        return _audit(args)
    except _UsageError as error:
        print(f"gatekeeperctl audit: {error}", file=sys.stderr)
        return EX_USAGE
    except _ConfigError:
        return EX_CONFIG
    except auditread.ReadError as error:
        print(f"gatekeeperctl audit: {escape(str(error))}", file=sys.stderr)
        return EX_NOINPUT if args.file else EX_UNAVAILABLE


def _audit(args: argparse.Namespace) -> int:
    if args.follow and (args.sessions or args.until):
        raise _UsageError("--follow cannot be combined with --sessions or --until")
    filters = _filters(args)
    config, owners, targets = _policy(args)
    launchers = args.launcher or [auditread.DEFAULT_LAUNCHER]
    trust = auditread.trust_config(launchers, owners, targets)
    file_path = args.file or (config.file if config.sink == "file" and not args.namespace else None)
    if file_path is not None:
        _warn_file(file_path)
        if args.follow:
            entries = auditread.read_file(file_path)
            with open(file_path, "rb") as handle:
                offset = handle.seek(0, 2)
            backlog = [e for e in entries if filters.match(e)][-args.lines :] if args.lines else []
            stream = auditread.follow_file(file_path, offset, lambda: time.sleep(0.1))
            _follow(_chain(backlog, stream), filters, as_json=args.json)
            return 0
        entries = auditread.read_file(file_path)
    else:
        namespace = args.namespace or auditread.namespace_of(config.journal_socket)
        identifier = args.identifier or config.identifier
        # Sessions need leave records written after --until: filter them afterwards.
        until = None if args.sessions else filters.until
        argv = auditread.journalctl_argv(
            namespace, identifier, filters.since, until, follow=args.follow, lines=args.lines
        )
        if args.follow:
            _follow(auditread.follow_journal(argv, trust), filters, as_json=args.json)
            return 0
        entries = auditread.read_journal(argv, trust)
    if args.sessions:
        _print_sessions(entries, filters, as_json=args.json)
    else:
        _print_records(entries, filters, as_json=args.json)
    return 0


def _chain(first: list[Entry], then: Iterable[Entry]) -> Iterable[Entry]:
    yield from first
    yield from then


def register(subparsers: Any) -> None:
    """Add ``audit``."""
    parser = subparsers.add_parser(
        "audit",
        help="review the audit trail",
        description="Review the gatekeeper's audit trail from journald or the file sink. "
        "Records that journald's own fields (_UID, _PID, _EXE, _CMDLINE) do not confirm "
        "are flagged FORGED (or UNVERIFIED when they cannot be checked).",
    )
    add_policy_option(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--namespace",
        metavar="NS",
        help="read this journald namespace (default: the policy's journal_socket)",
    )
    source.add_argument(
        "--file", metavar="PATH", help="read this file sink (default when sink = file)"
    )
    parser.add_argument("--since", metavar="TIME", help="from TIME (ISO 8601, today, -2h, ...)")
    parser.add_argument("--until", metavar="TIME", help="before TIME")
    parser.add_argument("--user", metavar="USER", help="only this account")
    parser.add_argument("--person", metavar="PERSON", help="only this person (policy [people])")
    parser.add_argument("--session", metavar="NAME", help="only this shared session")
    parser.add_argument("--decision", choices=DECISIONS, help="only this decision")
    parser.add_argument("--connection", metavar="ID", help="only this connection id (ref)")
    parser.add_argument(
        "--trusted-only", action="store_true", help="hide FORGED and UNVERIFIED records"
    )
    parser.add_argument(
        "--sessions", action="store_true", help="one line per guest session (connect+join+leave)"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="print new records as they come"
    )
    parser.add_argument(
        "-n", "--lines", type=int, default=10, metavar="N", help="with -f: N earlier records"
    )
    parser.add_argument(
        "--launcher",
        action="append",
        metavar="PATH",
        help=f"an accepted gatekeeper launcher (repeatable; default {auditread.DEFAULT_LAUNCHER})",
    )
    parser.add_argument("--identifier", metavar="ID", help="SYSLOG_IDENTIFIER (default: policy's)")
    parser.set_defaults(handler=_run)
