"""``gatekeeperctl explain``: the decision, the grant and the argv, without running anything.

Modelled on ``sshd -T -C user=...``: the same :func:`~gatekeeper.login.decide.decide`
and :func:`~gatekeeper.login.plan.plan` as the connection path, on an identity the
admin describes, so what it prints is what the gatekeeper would do (minus
the live checks: socket, terminal, program on disk).
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import shlex
import sys
from datetime import UTC, datetime
from typing import Any

from gatekeeper.cli.common import add_policy_option, policy_path, print_json
from gatekeeper.login import request as rq
from gatekeeper.login.decide import AttachSession, Deny, Inform, RunProgram, decide
from gatekeeper.login.entry import request_text
from gatekeeper.login.plan import plan
from gatekeeper.policy.loader import PolicyError, load
from gatekeeper.policy.model import Connection


def connection_for(
    user: str, key: str | None, address: str | None, command: str | None, *, tty: bool
) -> Connection:
    """The connection the gatekeeper would see for this user, key, address and command."""
    entry = pwd.getpwnam(user)
    groups = frozenset(
        grp.getgrgid(g).gr_name for g in os.getgrouplist(entry.pw_name, entry.pw_gid)
    )
    return Connection(
        user=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        home=entry.pw_dir,
        groups=groups,
        key_fingerprints=(key,) if key else (),
        client_addr=address,
        client_port=None,
        tty="/dev/pts/0" if tty else None,
        has_tty=tty,
        term="xterm-256color" if tty else None,
        original_command=command.encode("utf-8", errors="surrogateescape")
        if command is not None
        else None,
    )


def explain(
    policy_file: str,
    user: str,
    key: str | None = None,
    address: str | None = None,
    command: str | None = None,
    at: datetime | None = None,
    *,
    tty: bool = True,
) -> dict[str, Any]:
    """The explanation as data (also the ``--json`` output)."""
    policy = load(policy_file)
    connection = connection_for(user, key, address, command, tty=tty)
    request = rq.parse(connection.original_command)
    moment = at or datetime.now(UTC)
    decision = decide(connection, request, policy, moment)
    out: dict[str, Any] = {
        "user": connection.user,
        "groups": sorted(connection.groups),
        "person": decision.identity.person,
        "key_fingerprint": decision.identity.key_fingerprint,
        "client_addr": address,
        "at": moment.isoformat(),
        "request": request_text(request),
        "policy_sha256": policy.sha256,
    }
    if isinstance(decision, Deny):
        out.update(decision="deny", reason=decision.reason, detail=decision.detail)
        out["exit_code"] = decision.exit_code
    elif isinstance(decision, Inform):
        out.update(decision="allow", reason=f"inform_{decision.what}", exit_code=0)
        out["entitlements"] = [
            {"kind": e.kind, "name": e.name, "mode": e.mode, "default": e.default}
            for e in decision.entitlements
        ]
    else:
        exe = plan(decision, policy, connection)
        out.update(decision="allow", reason="granted", grant=decision.grant.label)
        out["argv"] = list(exe.argv)
        out["env"] = dict(exe.env)
        if isinstance(decision, AttachSession):
            out.update(session=decision.session, mode=decision.mode)
        elif isinstance(decision, RunProgram):
            out["program"] = decision.program
    return out


def _print(data: dict[str, Any]) -> None:
    order = [
        "decision", "reason", "detail", "exit_code", "request", "user", "groups", "person",
        "key_fingerprint", "client_addr", "at", "grant", "session", "program", "mode",
    ]  # fmt: skip
    for key in order:
        if key in data and data[key] not in (None, ""):
            value = data[key]
            shown = ", ".join(value) if isinstance(value, list) else value
            print(f"{key + ':':<16} {shown}")
    if "argv" in data:
        print(f"{'argv:':<16} {shlex.join(data['argv'])}")
    for item in data.get("entitlements", []):
        mode = f" ({item['mode']})" if item["mode"] else ""
        default = " [default]" if item["default"] else ""
        print(f"{'may use:':<16} {item['kind']} {item['name']}{mode}{default}")


def _run(args: argparse.Namespace) -> int:
    try:
        data = explain(
            policy_path(args),
            args.user,
            args.key,
            getattr(args, "from"),
            args.command,
            args.at,
            tty=not args.no_tty,
        )
    except PolicyError as error:
        print(error.render(), file=sys.stderr)
        return 78
    except KeyError:
        print(f"gatekeeperctl: no such user: {args.user}", file=sys.stderr)
        return 67
    if args.json:
        print_json(data)
    else:
        _print(data)
    return 0


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a timezone, e.g. 2026-12-01T10:00:00Z")
    return value


def register(subparsers: Any) -> None:
    """Add ``explain``."""
    parser = subparsers.add_parser(
        "explain", help="show the decision, grant and argv for a user and request"
    )
    add_policy_option(parser)
    parser.add_argument("--user", required=True, help="the account the guest logs in as")
    parser.add_argument("--key", metavar="FPR", help="key fingerprint (SHA256:...)")
    parser.add_argument("--from", metavar="ADDR", help="client address")
    parser.add_argument(
        "--command", metavar="TEXT", help="SSH_ORIGINAL_COMMAND (omit for a plain login)"
    )
    parser.add_argument("--at", type=_timestamp, metavar="TIME", help="ISO 8601 time")
    parser.add_argument("--no-tty", action="store_true", help="as if connected without -t")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=_run)
