"""``gatekeeperctl explain``: the decision, the grant and the argv, without running anything.

Modelled on ``sshd -T -C user=...``: the same :func:`~gatekeeper.login.decide.decide`,
:func:`~gatekeeper.login.plan.plan` and record builder
(:func:`~gatekeeper.login.record.build`) as the login path, on an identity the
admin describes, so what it prints is what the audit record would say. Without
``--live`` the live checks (program on disk, socket, server) are skipped; with
it, the login path's own pre-flight (:mod:`gatekeeper.login.preflight`) runs,
for the guest's uid and groups - but it connects to the socket as the caller.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shlex
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from gatekeeper.cli.common import add_policy_option, policy_path, print_json
from gatekeeper.exitcodes import EX_CONFIG, EX_NOUSER, EX_OK, EX_SOFTWARE
from gatekeeper.login import preflight, record
from gatekeeper.login import request as rq
from gatekeeper.login.decide import AttachSession, Inform, RunProgram, decide
from gatekeeper.login.plan import plan
from gatekeeper.policy.loader import PolicyError, load
from gatekeeper.policy.model import Connection

if TYPE_CHECKING:
    from gatekeeper.login.plan import ExecPlan
    from gatekeeper.policy.model import Policy


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


#: Record fields shown when they have a value, in the record's words.
_RECORD_KEYS = ("detail", "exit_code", "grant", "session", "program", "mode", "argv")


def explain(
    policy_file: str,
    user: str,
    key: str | None = None,
    address: str | None = None,
    command: str | None = None,
    at: datetime | None = None,
    *,
    tty: bool = True,
    live: bool = False,
) -> dict[str, Any]:
    """The explanation as data (also the ``--json`` output).

    ``live``: also run the login path's pre-flight against the running system.
    """
    policy = load(policy_file)
    connection = connection_for(user, key, address, command, tty=tty)
    request = rq.parse(connection.original_command)
    moment = at or datetime.now(UTC)
    decision = decide(connection, request, policy, moment)
    exe = refused = None
    if isinstance(decision, AttachSession | RunProgram):
        exe = plan(decision, policy, connection)
        if live:
            refused = _preflight_as_guest(decision, policy, connection, exe)
    stages = record.Stages(
        "explain", connection.uid, connection, request, policy.sha256, decision, exe, refused
    )
    would = record.build(stages, pid=0)
    out: dict[str, Any] = {
        "user": connection.user,
        "groups": sorted(connection.groups),
        "person": would["person"],
        "key_fingerprint": would["key_fingerprint"],
        "client_addr": address,
        "at": moment.isoformat(),
        "request": would["request"],
        "policy_sha256": would["policy_sha256"],
        "decision": would["decision"],
        "reason": would["reason"],
    }
    out.update({k: would[k] for k in _RECORD_KEYS if would[k] not in (None, "")})
    if isinstance(decision, Inform):
        out["entitlements"] = [
            {"kind": e.kind, "name": e.name, "mode": e.mode, "default": e.default}
            for e in decision.entitlements
        ]
    if exe is not None:
        out["env"] = dict(exe.env)
    if live:
        out["live"] = "refused" if refused is not None else "passed"
    return out


def _preflight_as_guest(
    decision: AttachSession | RunProgram, policy: Policy, connection: Connection, exe: ExecPlan
) -> preflight.Refused | None:
    """The login's pre-flight, run as the guest: in a child with the guest's uid and groups.

    The checks depend on who asks (which directories the guest may search,
    whether tmux's ``server-access`` lets that uid in): root would pass them all.
    """
    if os.geteuid() != 0 or connection.uid == 0:
        return preflight.check(decision, policy, connection, exe)
    gids = os.getgrouplist(connection.user, connection.gid)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the guest for good, answer on the pipe, exit
        status = EX_SOFTWARE
        try:
            os.close(read_end)
            os.setgroups(gids)
            os.setgid(connection.gid)
            os.setuid(connection.uid)
            refused = preflight.check(decision, policy, connection, exe)
            answer = (
                None if refused is None else [refused.reason, refused.detail, refused.exit_code]
            )
            os.write(write_end, json.dumps(answer).encode())
            status = EX_OK
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(wait_status) != EX_OK or not data:
        raise RuntimeError("the pre-flight as the guest did not finish")
    answer = json.loads(data)
    if answer is None:
        return None
    reason, detail, code = answer
    return preflight.Refused(cast("preflight.Reason", reason), str(detail), int(code))


def _print(data: dict[str, Any]) -> None:
    order = [
        "decision", "reason", "detail", "exit_code", "request", "user", "groups", "person",
        "key_fingerprint", "client_addr", "at", "grant", "session", "program", "mode", "live",
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
            live=args.live,
        )
    except PolicyError as error:
        print(error.render(), file=sys.stderr)
        return EX_CONFIG
    except KeyError:
        print(f"gatekeeperctl: no such user: {args.user}", file=sys.stderr)
        return EX_NOUSER
    if args.json:
        print_json(data)
    else:
        _print(data)
    return EX_OK


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
    parser.add_argument(
        "--live",
        action="store_true",
        help="also run the login's live checks as the guest: program, socket, server",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=_run)
