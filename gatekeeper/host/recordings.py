"""``gatekeeperctl recordings``: the recordings of the policy's sessions and the visits they cover.

One line per recording (a pane and period; its continuation parts are
counted, not listed): start (UTC), session, pane, parts, bytes, and the
visits that name it in their ``join``/``leave`` records - read from the audit
trail when this account may read it (root, or the ``systemd-journal`` group);
otherwise from the recording's own marker (who joined or left when the period
began). Run as the host or root: nobody else can list the directories.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from gatekeeper.cli.common import add_policy_option, policy_path
from gatekeeper.login.textsafe import escape
from gatekeeper.review import auditread

if TYPE_CHECKING:
    from gatekeeper.policy.model import Policy

_FILE: Final = re.compile(
    r"^(?P<id>(?P<start>[0-9]{8}T[0-9]{6}\.[0-9]{6}Z)_(?P<session>[A-Za-z0-9_-]{1,64})"
    r"_p(?P<pane>[0-9]{1,9}))_(?P<part>[0-9]{3})\.cast$"
)


@dataclass
class Recording:
    """One pane's recording for one period."""

    id: str
    start: datetime
    session: str
    pane: str
    directory: str
    parts: list[str] = field(default_factory=list)
    size: int = 0
    marker: str = ""
    visits: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {
            "id": self.id,
            "start": self.start.isoformat(),
            "session": self.session,
            "pane": f"%{self.pane}",
            "files": [os.path.join(self.directory, p) for p in self.parts],
            "bytes": self.size,
            "marker": self.marker,
            "visits": self.visits,
        }


def scan(policy: Policy, session: str | None) -> list[Recording]:
    """Every recording in the directories of the policy's (or one) session."""
    found: dict[str, Recording] = {}
    for name, entry in sorted(policy.sessions.items()):
        if session is not None and name != session:
            continue
        directory = entry.recordings_dir
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for file_name in names:
            match = _FILE.match(file_name)
            if not match or match.group("session") != name:
                continue
            key = match.group("id")
            start = datetime.strptime(match.group("start"), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
            rec = found.setdefault(key, Recording(key, start, name, match.group("pane"), directory))
            rec.parts.append(file_name)
            path = os.path.join(directory, file_name)
            try:
                rec.size += os.lstat(path).st_size
            except OSError:
                continue
            if match.group("part") == "000":
                rec.marker = _marker(path)
    return sorted(found.values(), key=lambda r: (r.start, r.session, int(r.pane)))


def _marker(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            handle.readline()
            event = json.loads(handle.readline() or "null")
    except (OSError, ValueError):
        return ""
    if isinstance(event, list) and len(event) == 3 and event[1] == "m":
        return str(event[2])
    return ""


def attach_visits(policy: Policy, recordings: list[Recording]) -> bool:
    """Fill each recording's visits from the audit trail; ``False`` if it cannot be read."""
    config = policy.audit
    owners = {}
    for name, entry in policy.sessions.items():
        try:
            owners[name] = pwd.getpwnam(entry.owner).pw_uid
        except KeyError:
            continue
    trust = auditread.trust_config([auditread.DEFAULT_LAUNCHER], owners, {policy.tmux_binary})
    try:
        if config.sink == "file":
            entries = auditread.read_file(config.file)
        else:
            argv = auditread.journalctl_argv(
                auditread.namespace_of(config.journal_socket),
                config.identifier,
                None,
                None,
                follow=False,
                lines=None,
            )
            entries = auditread.read_journal(argv, trust)
    except (auditread.ReadError, OSError):
        return False
    by_file: dict[str, list[dict[str, Any]]] = {}
    for visit in auditread.join_sessions(entries):
        summary = {
            k: visit.as_json()[k]
            for k in ("user", "person", "client_addr", "mode", "start", "ended", "trust")
        }
        summary["connection_id"] = visit.field("connection_id")
        for name in visit.recordings:
            by_file.setdefault(name, []).append(summary)
    for rec in recordings:
        seen: list[dict[str, Any]] = []
        for part in rec.parts:
            seen.extend(v for v in by_file.get(part, []) if v not in seen)
        rec.visits = seen
    return True


def _run(args: argparse.Namespace) -> int:
    from gatekeeper.policy.loader import PolicyError, load  # noqa: PLC0415 - pydantic is heavy

    try:
        policy = load(policy_path(args))
        since = auditread.parse_time(args.since) if args.since else None
    except PolicyError as error:
        print(f"gatekeeperctl recordings: {escape(error.render())}", file=sys.stderr)
        return 78
    except ValueError as error:
        print(f"gatekeeperctl recordings: {error}", file=sys.stderr)
        return 64
    if args.session is not None and args.session not in policy.sessions:
        print(f"gatekeeperctl recordings: no session {args.session!r}", file=sys.stderr)
        return 64
    found = [r for r in scan(policy, args.session) if since is None or r.start >= since]
    audited = attach_visits(policy, found)
    if args.person is not None:
        if not audited:
            print("gatekeeperctl recordings: --person needs the audit trail", file=sys.stderr)
            return 69
        found = [r for r in found if any(v.get("person") == args.person for v in r.visits)]
    if args.json:
        sys.stdout.write("".join(json.dumps(r.as_json(), ensure_ascii=True) + "\n" for r in found))
        return 0
    print("START (UTC)          SESSION       PANE   PARTS  BYTES        VISITS / ID")
    for rec in found:
        visits = ", ".join(
            f"{v.get('person') or v.get('user')} ({v.get('mode')}, {v.get('ended')})"
            for v in rec.visits
        ) or (f"marker: {rec.marker}" if rec.marker else "-")
        print(
            escape(
                f"{rec.start:%Y-%m-%d %H:%M:%S}  {rec.session:<12}  %{rec.pane:<5} "
                f"{len(rec.parts):>5}  {rec.size:<11}  {visits}"
            )
        )
        print(f"    {rec.id}")  # fixed pattern: digits, the policy's session name
    if not audited:
        print("(the audit trail is not readable here: visits shown from the recordings' markers)")
    return 0


def register(subparsers: Any) -> None:
    """Add ``recordings``."""
    parser = subparsers.add_parser(
        "recordings",
        help="(host, admin) list session recordings and the visits they cover",
        description="List the asciicast recordings of the policy's sessions, one per pane "
        "and period, with the guest visits whose join/leave records name them. "
        "Play one with 'gatekeeperctl replay ID'.",
    )
    parser.add_argument("--session", help="only this session")
    parser.add_argument("--person", help="only recordings of visits by this person")
    parser.add_argument("--since", help="only recordings started at or after this time")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_policy_option(parser)
    parser.set_defaults(handler=_run)
