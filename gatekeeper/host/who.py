"""``gatekeeperctl who``: who is attached to a shared session (SPEC §6).

One line (or JSON object) per attached tmux client: the account, the person
from the gatekeeper's ``connect`` record when the caller can read it (joined
on ``client_pid``, which is the gatekeeper's pid after it exec'd tmux), the
mode, since when, and the client's tty. Run by the host (or root); without
SESSION, every session of the policy the caller owns (root: all).
"""

from __future__ import annotations

import argparse
import os
import pwd
from datetime import UTC, datetime
from typing import Any

from gatekeeper.cli.common import add_policy_option, policy_path, print_json
from gatekeeper.host import control as hostlib
from gatekeeper.host.control import HostError, HostServer
from gatekeeper.host.share import fail
from gatekeeper.login import live
from gatekeeper.login.textsafe import escape
from gatekeeper.policy.model import Policy


def _owned(policy: Policy) -> list[str]:
    uid = os.getuid()
    names = []
    for name, session in sorted(policy.sessions.items()):
        try:
            owner_uid = pwd.getpwnam(session.owner).pw_uid
        except KeyError:
            continue
        if uid in (0, owner_uid):
            names.append(name)
    return names


def attached(policy: Policy, name: str) -> list[dict[str, Any]] | None:
    """The clients of session ``name``, or ``None`` when its server is not running."""
    session = policy.sessions[name]
    if live.probe(session.socket) != "running":
        return None
    server = HostServer(policy.tmux_binary, session.socket)
    try:
        owner_uid = pwd.getpwnam(session.owner).pw_uid
    except KeyError:
        owner_uid = -1
    rows: list[dict[str, Any]] = []
    for client in server.clients():
        host = client.uid in (owner_uid, 0)
        info = None if host else hostlib.connect_record(policy, client.pid, client.uid)
        rows.append(
            {
                "session": name,
                "user": client.user,
                "uid": client.uid,
                "person": info.person if info else None,
                "connection_id": info.connection_id if info else None,
                "mode": client.mode,
                "read_only": client.read_only,
                "since": datetime.fromtimestamp(client.created, UTC).isoformat(),
                "tty": client.name,
                "client_pid": client.pid,
                "host": host,
            }
        )
    return rows


def _run(args: argparse.Namespace) -> int:
    path = policy_path(args)
    try:
        if args.session:
            policy, _ = hostlib.load(path, args.session)
            names = [args.session]
        else:
            from gatekeeper.policy.loader import PolicyError, load  # noqa: PLC0415 - pydantic is heavy

            try:
                policy = load(path)
            except PolicyError as error:
                raise HostError(error.render()) from None
            names = _owned(policy)
    except HostError as error:
        return fail("who", error)
    rows: list[dict[str, Any]] = []
    stopped: list[str] = []
    for name in names:
        found = attached(policy, name)
        if found is None:
            stopped.append(name)
        else:
            rows.extend(found)
    if args.json:
        print_json(rows)
        return 0
    for name in stopped:
        print(f"{name}: not running")
    if not rows:
        print("nobody is attached")
        return 0
    header = ("SESSION", "USER", "PERSON", "MODE", "SINCE", "TTY", "PID")
    table = [
        (
            row["session"],
            escape(row["user"]) + (" (host)" if row["host"] else ""),
            escape(row["person"] or "-"),
            row["mode"],
            row["since"].replace("+00:00", "Z"),
            escape(row["tty"]),
            str(row["client_pid"]),
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def register(subparsers: Any) -> None:
    """Add ``who``."""
    parser = subparsers.add_parser(
        "who",
        help="list who is attached to a session",
        description="Each attached client: user, person, read-only or not, since when, tty.",
    )
    parser.add_argument(
        "session", metavar="SESSION", nargs="?", help="one session (default: yours)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_policy_option(parser)
    parser.set_defaults(handler=_run)
