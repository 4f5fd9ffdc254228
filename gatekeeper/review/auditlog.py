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
import os
import pwd
import re
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
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
    ("BY", 8),
    ("COMMAND", 0),
)
#: Rows whose widths set the table's (later rows stream out under those widths).
WIDTH_ROWS: Final = 1000
#: journalctl's relative times (``-3min``, ``-2h``) look like options to argparse.
_RELATIVE_VALUE = re.compile(r"^-\d")
_TIME_OPTIONS: Final = ("--since", "--until")
EVENTS: Final = ("connect", "join", "leave", "kick", "revoke", "share")
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
    if entry.event == "kick":
        return "kicked"
    if entry.event == "share":
        return record.get("changes")
    return record.get("reason")


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _flag(trust: str, *, claimed: bool) -> str:
    """The TRUST cell: from a collector, ``ok`` is only the sending host's claim."""
    return "claim" if claimed and trust == "trusted" else _FLAG[trust]


def _host_cell(entry: Entry) -> str:
    claimed = entry.meta.get("_HOSTNAME")
    if entry.host is None:
        return _cell(claimed and f"{claimed}?")
    return _cell(entry.host)


def record_row(entry: Entry, *, hosts: bool = False) -> list[str]:
    """The escaped table cells of one record (with ``hosts``: HOST after TIME)."""
    cells = _record_cells(entry)
    if hosts:
        cells.insert(1, _host_cell(entry))
    return cells


def _record_cells(entry: Entry) -> list[str]:
    record = entry.record
    target = record.get("session") or record.get("program")
    command = record.get("original_command")
    if isinstance(command, str):
        command = auditread.unescape(command)
    if entry.trust != "trusted":
        command = f"[{entry.why}]" + ("" if command is None else f" {command}")
    return [
        _cell(_local(entry.time)),
        _cell(_flag(entry.trust, claimed=entry.claimed)),
        _cell(record.get("event")),
        _cell(record.get("decision")),
        _cell(record.get("user")),
        _cell(record.get("person")),
        _cell(record.get("client_addr")),
        _cell(target),
        _cell(record.get("mode")),
        _cell(record.get("connection_id")),
        _cell(_reason(entry)),
        _cell(record.get("by")),
        _cell(command),
    ]


def session_row(visit: GuestSession, *, hosts: bool = False) -> list[str]:
    """The escaped table cells of one guest session (with ``hosts``: HOST after START)."""
    first = visit.parts[0]
    cells = [
        _cell(_local(visit.start)),
        _cell(_flag(visit.trust, claimed=first.claimed)),
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
    if hosts:
        cells.insert(1, _host_cell(first))
    return cells


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def table(columns: Sequence[tuple[str, int]], rows: Sequence[list[str]]) -> str:
    """Rows aligned under a header (cells are already escaped)."""
    return "".join(stream_table(columns, rows))


def stream_table(columns: Sequence[tuple[str, int]], rows: Iterable[list[str]]) -> Iterator[str]:
    """Lines of a table, aligned on the first :data:`WIDTH_ROWS` rows, streamed after.

    Memory stays bounded on a journal of any size; a later cell wider than
    its column only pushes the rest of its own line to the right.
    """
    heads = [name for name, _ in columns]
    first: list[list[str]] = []
    it = iter(rows)
    for row in it:
        first.append(row)
        if len(first) >= WIDTH_ROWS:
            break
    widths = [max([len(h)] + [len(r[i]) for r in first]) for i, h in enumerate(heads)]
    for row in [heads, *first]:
        yield _line(row, widths) + "\n"
    for row in it:
        yield _line(row, widths) + "\n"


def _with_host(columns: Sequence[tuple[str, int]], *, hosts: bool) -> list[tuple[str, int]]:
    out = list(columns)
    if hosts:
        out.insert(1, ("HOST", 15))
    return out


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
    from gatekeeper.policy import cache as policycache  # noqa: PLC0415 - only when a policy is read

    path = args.policy or DEFAULT_PATH
    if args.policy is None and not os.path.exists(path):
        return AuditConfig(), {}, set()
    # The validated-policy cache (gatekeeperctl check, run as root) spares pydantic.
    cached = policycache.lookup(path)
    if cached is not None:
        loaded = cached
    else:
        from gatekeeper.policy import loader as policy_module  # noqa: PLC0415 - pydantic is heavy

        try:
            loaded = policy_module.load(path)
        except policy_module.PolicyError as error:
            fatal = args.policy is not None and not (args.file or args.namespace or args.directory)
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
        events=tuple(args.event or ()),
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


def _write_lines(lines: Iterable[str]) -> None:
    """Write lines in chunks (one flush per chunk, not per line)."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= 512:
            _write("".join(chunk))
            chunk.clear()
    _write("".join(chunk))


def _print_records(
    entries: Iterable[Entry], filters: Filters, *, as_json: bool, hosts: bool
) -> None:
    chosen = (e for e in entries if filters.match(e))
    if as_json:
        _write_lines(_json_line(e.as_json()) for e in chosen)
    else:
        rows = (record_row(e, hosts=hosts) for e in chosen)
        _write_lines(stream_table(_with_host(RECORD_COLUMNS, hosts=hosts), rows))


def _print_sessions(
    entries: Iterable[Entry], filters: Filters, *, as_json: bool, hosts: bool
) -> None:
    visits = auditread.stream_sessions(entries, filters)
    if as_json:
        _write_lines(_json_line(_session_json(v)) for v in visits)
    else:
        rows = (session_row(v, hosts=hosts) for v in visits)
        _write_lines(stream_table(_with_host(SESSION_COLUMNS, hosts=hosts), rows))


def _session_json(visit: GuestSession) -> dict[str, Any]:
    data = visit.as_json()
    first = visit.parts[0]
    if first.host is not None or first.claimed:
        data["host"] = first.host
        data["trust_scope"] = "host-claim" if first.claimed else "local"
    return data


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
        return EX_NOINPUT if (args.file or args.directory) else EX_UNAVAILABLE


def _collector(args: argparse.Namespace) -> list[auditread.Source] | None:
    """The per-host sources of ``--directory`` or a journal ``--file``; None otherwise."""
    if args.directory is not None:
        paths = auditread.journal_files(args.directory)
    elif args.file is not None and auditread.is_journal_file(args.file):
        paths = [args.file]
    else:
        return None
    hosts = auditread.read_hosts(args.hosts or "/etc/hosts")
    return auditread.collector_sources(paths, hosts, resolve=not args.hosts)


def _audit(args: argparse.Namespace) -> int:
    if args.follow and (args.sessions or args.until):
        raise _UsageError("--follow cannot be combined with --sessions or --until")
    filters = _filters(args)
    config, owners, targets = _policy(args)
    launchers = args.launcher or [auditread.DEFAULT_LAUNCHER]
    trust = auditread.trust_config(launchers, owners, targets)
    identifier = args.identifier or config.identifier
    # Sessions need leave records written after --until: filter them afterwards.
    until = None if args.sessions else filters.until
    matches = filters.matches(sessions=args.sessions)
    collector = _collector(args)
    if collector is not None:
        if args.follow:
            raise _UsageError(
                "--follow does not read journal files or directories: "
                "use journalctl --file PATH --follow, or run audit again"
            )
        streams = [
            auditread.stream_journal(
                auditread.journalctl_argv(
                    source, identifier, filters.since, until, matches=matches
                ),
                trust,
                source.origin,
            )
            for source in collector
        ]
        entries: Iterable[Entry] = auditread.merge_by_time(streams)
        hosts = True
    else:
        file_path = args.file or (
            config.file if config.sink == "file" and not args.namespace else None
        )
        hosts = False
        if file_path is not None:
            _warn_file(file_path)
            if args.follow:
                with open(file_path, "rb") as handle:
                    offset = handle.seek(0, 2)
                backlog = _tail(auditread.read_file(file_path), filters, args.lines)
                stream = auditread.follow_file(file_path, offset, lambda: time.sleep(0.1))
                _follow(_chain(backlog, stream), filters, as_json=args.json)
                return 0
            entries = auditread.read_file(file_path)
        else:
            namespace = args.namespace or auditread.namespace_of(config.journal_socket)
            source = auditread.Source(namespace=namespace)
            if (hint := auditread.access_hint(source)) is not None:
                print(
                    "gatekeeperctl audit: note: you cannot read other accounts' journal "
                    f"entries, so records are missing and PERSON shows '-': {hint}",
                    file=sys.stderr,
                )
            argv = auditread.journalctl_argv(
                source,
                identifier,
                filters.since,
                until,
                follow=args.follow,
                lines=args.lines,
                matches=matches,
            )
            if args.follow:
                _follow(auditread.stream_journal(argv, trust), filters, as_json=args.json)
                return 0
            entries = auditread.stream_journal(argv, trust)
            if args.sessions and (filters.person or filters.connection or filters.decision):

                def read(matches: Sequence[str], since: datetime | None) -> Iterator[Entry]:
                    return auditread.stream_journal(
                        auditread.journalctl_argv(source, identifier, since, None, matches=matches),
                        trust,
                    )

                entries = auditread.targeted_session_entries(read, filters) or entries
    if args.sessions:
        _print_sessions(entries, filters, as_json=args.json, hosts=hosts)
    else:
        _print_records(entries, filters, as_json=args.json, hosts=hosts)
    return 0


def _tail(entries: Iterable[Entry], filters: Filters, count: int) -> list[Entry]:
    """The last ``count`` matching records (a bounded window, not the whole file)."""
    window: deque[Entry] = deque(maxlen=max(count, 0))
    for entry in entries:
        if count and filters.match(entry):
            window.append(entry)
    return list(window)


def _chain(first: list[Entry], then: Iterable[Entry]) -> Iterable[Entry]:
    yield from first
    yield from then


def time_values(argv: Sequence[str]) -> list[str]:
    """``--since -3min`` as ``--since=-3min``: argparse takes ``-3min`` for an option.

    journalctl users type relative times with a space; only a value that
    starts with a dash and a digit is joined, so ``--since --user x`` still
    reports the missing value.
    """
    out: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        following = items[index + 1] if index + 1 < len(items) else None
        if item == "--":
            out += items[index:]
            break
        if item in _TIME_OPTIONS and following is not None and _RELATIVE_VALUE.match(following):
            out.append(f"{item}={following}")
            index += 2
            continue
        out.append(item)
        index += 1
    return out


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
        "--file",
        metavar="PATH",
        help="read this file: a journal file (journalctl --file; a collector's "
        "remote-HOST.journal names its host) or the file sink (default when sink = file)",
    )
    source.add_argument(
        "--directory",
        metavar="DIR",
        help="read a collector's journal directory (systemd-journal-remote, SplitMode=host): "
        "a HOST column, each record attributed to the host whose file it came from",
    )
    parser.add_argument(
        "--hosts",
        metavar="FILE",
        help="with --directory/--file: the names of each source address, /etc/hosts format "
        "(default: /etc/hosts and reverse DNS); a record whose _HOSTNAME is not one of "
        "its file's names is flagged",
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="from TIME (ISO 8601, today, yesterday, -2h, '-3min' with or without =, @EPOCH)",
    )
    parser.add_argument("--until", metavar="TIME", help="before TIME")
    parser.add_argument("--user", metavar="USER", help="only this account")
    parser.add_argument("--person", metavar="PERSON", help="only this person (policy [people])")
    parser.add_argument("--session", metavar="NAME", help="only this shared session")
    parser.add_argument("--decision", choices=DECISIONS, help="only this decision")
    parser.add_argument(
        "--event",
        action="append",
        choices=EVENTS,
        help="only this event type (repeatable: any of them)",
    )
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
