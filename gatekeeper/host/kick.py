"""``gatekeeperctl kick``: detach a user and revoke their access (SPEC §6).

Every tmux client of USER is detached and USER's ``server-access`` grant is
removed, so the guest cannot reattach (the gatekeeper then says the session
is not shared with them) until ``gatekeeperctl share`` grants it again; the
watcher does not give it back at a grant boundary either. Audited as a
``kick`` record; each detached client also gets a ``leave`` record with
``ended = kicked``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gatekeeper.cli.common import add_policy_option, policy_path
from gatekeeper.exitcodes import EX_UNAVAILABLE
from gatekeeper.host import control as hostlib
from gatekeeper.host.control import HostError, HostServer
from gatekeeper.host.share import fail
from gatekeeper.login import live


def _run(args: argparse.Namespace) -> int:
    path = policy_path(args)
    try:
        policy, session = hostlib.load(path, args.session)
        uid = hostlib.require_owner(session, allow_root=True)
        if args.user in (session.owner, "root"):
            return fail("kick", HostError(f"{args.user} owns the server and cannot be kicked"))
        if live.probe(session.socket) != "running":
            print(f"gatekeeperctl kick: session {session.name!r} is not running")
            return EX_UNAVAILABLE
        server = HostServer(policy.tmux_binary, session.socket)
        victims = hostlib.revoke(policy, session.name, server, args.user, "kicked")
        kicked = hostlib.kicked(server) | {args.user}
        server.set_option(hostlib.OPT_KICKED, " ".join(sorted(kicked)))
    except HostError as error:
        return fail("kick", error)
    problem = hostlib.emit(
        policy,
        "kick",
        user=args.user,
        uid=hostlib.uid_of(args.user),
        session=session.name,
        by=hostlib.user_name(uid),
        client_pid=victims[0].pid if len(victims) == 1 else None,
        detail=f"{len(victims)} client(s) detached: "
        + (", ".join(f"{c.name} pid {c.pid}" for c in victims) or "none"),
        pid=os.getpid(),
    )
    print(
        f"kicked {args.user} from {session.name}: {len(victims)} client(s) detached; "
        f"access revoked until 'gatekeeperctl share {session.name}' grants it again"
    )
    if problem:
        print(f"warning: the kick audit record was not written: {problem}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``kick``."""
    parser = subparsers.add_parser(
        "kick",
        help="detach a user and revoke their access",
        description="Detach USER's clients from SESSION and remove their server-access "
        "grant until share grants it again.",
    )
    parser.add_argument("session", metavar="SESSION")
    parser.add_argument("user", metavar="USER")
    add_policy_option(parser)
    parser.set_defaults(handler=_run)
