"""What the join/leave hooks do besides the audit record: recording periods and the host's notice.

When a guest attaches or leaves, the host's own tmux clients (uid = the
host's; never a guest's) get a short ``display-message``, e.g.
``gatekeeper: bob (pair) joined read-only from 192.0.2.7``. Its words come
only from the user database (the account), the policy (the person's name,
checked against the name pattern) and the connect record's address, parsed by
:mod:`ipaddress`; ``#`` is doubled anyway, because tmux expands formats in
the message (SECURITY.md §22). ``sessions.NAME.announce = false`` turns it off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from typing import Final

from gatekeeper.host import control as hostlib
from gatekeeper.host import recording
from gatekeeper.host.control import Client, ConnectInfo, HostServer, Joined
from gatekeeper.policy.model import NAME_PATTERN, Policy, Session

_ACCOUNT: Final = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_PERSON: Final = re.compile(NAME_PATTERN)
#: How long the host's status line shows the notice (milliseconds).
DISPLAY_MS: Final = 8000


def notice(user: str, person: str | None, verb: str, address: str | None) -> str:
    """``gatekeeper: PERSON (ACCOUNT) VERB [from ADDRESS]`` from checked words only."""
    account = user if _ACCOUNT.match(user) else "unknown-account"
    who = f"{person} ({account})" if person and _PERSON.match(person) else account
    text = f"gatekeeper: {who} {verb}"
    if address:
        with contextlib.suppress(ValueError):
            text += f" from {ipaddress.ip_address(address)}"
    return text.replace("#", "##")


def announce(session: Session, server: HostServer, text: str) -> None:
    """Show ``text`` on every client of the host (not on the guests')."""
    if not session.announce:
        return
    host = os.getuid()
    for client in server.clients():
        if client.uid == host:
            server.run("display-message", "-c", client.name, "-d", str(DISPLAY_MS), text)


def _address(info: ConnectInfo | None) -> str | None:
    return info.client_addr if info else None


def joined(policy: Policy, session: Session, server: HostServer, client: Client) -> None:
    """A fresh guest client: new recording period, ``join`` record with its files, notice."""
    files, start = recording.on_visit_change(
        policy, policy.path, session, server, f"join {client.user} {client.mode}"
    )
    if start:
        recording.remember_visit(server, client.name, start)
    info = hostlib.emit_join(policy, session.name, client, files or None)
    person = info.person if info else None
    announce(session, server, notice(client.user, person, f"joined {client.mode}", _address(info)))


def left(
    policy: Policy, session: Session, server: HostServer, joined: Joined, ended: str
) -> list[str]:
    """A guest client left: new period; return the files of its visit; notice."""
    user = hostlib.user_name(joined.uid)
    _files, start = recording.on_visit_change(
        policy, policy.path, session, server, f"leave {user} {ended}"
    )
    files = recording.visit_files(session, server, joined.name, start or "~")
    if session.announce:
        info = hostlib.connect_record(policy, joined.pid, joined.uid)
        verb = "left" if ended == "detached" else f"left ({ended})"
        address = _address(info)
        announce(session, server, notice(user, info.person if info else None, verb, address))
    return files
