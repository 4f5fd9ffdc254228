"""Stage: the live checks right before exec - the program, the session's owner, socket and server.

The plan is pure; this stage looks at the running system, as the guest, a
moment before ``execve``: a check done earlier could be stale by then. It
returns ``None`` (go ahead) or one :class:`Refused` with a reason from the
closed set :data:`Reason`, an admin-only detail and the exit code. Used by the
login path and by ``gatekeeperctl explain --live``, so both say the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, assert_never

from gatekeeper.exitcodes import EX_CONFIG, EX_DENIED, EX_UNAVAILABLE
from gatekeeper.login.decide import AttachSession, RunProgram
from gatekeeper.login.fsafety import SocketProblem

if TYPE_CHECKING:
    from gatekeeper.login.plan import ExecPlan
    from gatekeeper.policy.model import Connection, Policy

#: Every reason this stage can give (audit ``reason``; documented in audit.REASONS).
Reason = Literal[
    "program_missing",
    "owner_unknown",
    SocketProblem,
    "session_stale",
    "session_missing",
    "session_inaccessible",
    "session_not_shared",
]
#: Socket problems a guest could wait out or ask the host about (69); the others
#: mean the socket is not the host's, or not in a safe place (1).
_UNAVAILABLE_SOCKET: Final = frozenset({"socket_missing", "socket_inaccessible"})


@dataclass(frozen=True, slots=True)
class Refused:
    """The live system says no: the audit ``reason``, ``detail`` and the exit code."""

    reason: Reason
    detail: str
    exit_code: int


def check(
    decision: AttachSession | RunProgram, policy: Policy, connection: Connection, exe: ExecPlan
) -> Refused | None:
    """``None`` when the plan can be exec'd now, else why not (run as the guest)."""
    if not os.access(exe.path, os.X_OK):
        return Refused("program_missing", f"{exe.path} is not executable", EX_UNAVAILABLE)
    match decision:
        case RunProgram():
            return None
        case AttachSession():
            return _session(policy, decision.session, connection)
        case _:  # pragma: no cover - the union is closed
            assert_never(decision)


def _session(policy: Policy, name: str, connection: Connection) -> Refused | None:
    import pwd  # noqa: PLC0415 - only an attach needs these

    from gatekeeper.login import fsafety, live  # noqa: PLC0415

    session = policy.sessions[name]
    try:
        owner_uid = pwd.getpwnam(session.owner).pw_uid
    except KeyError:
        return Refused("owner_unknown", f"session owner {session.owner} does not exist", EX_CONFIG)
    problem = fsafety.check_socket(session.socket, owner_uid, connection.uid, os.getgroups())
    if problem is not None:
        reason, detail = problem
        code = EX_UNAVAILABLE if reason in _UNAVAILABLE_SOCKET else EX_DENIED
        return Refused(reason, detail, code)
    state = live.probe(session.socket)
    match state:
        case "running":
            pass
        case "stale" | "missing" | "inaccessible":
            reason_of: dict[str, Reason] = {
                "stale": "session_stale",
                "missing": "session_missing",
                "inaccessible": "session_inaccessible",
            }
            return Refused(reason_of[state], f"{session.socket}: {state}", EX_UNAVAILABLE)
        case _:  # pragma: no cover - the Literal is closed
            assert_never(state)
    if live.access_allowed(policy.tmux_binary, session.socket) is False:
        detail = f"{session.socket}: the host has not granted server-access (gatekeeperctl share)"
        return Refused("session_not_shared", detail, EX_UNAVAILABLE)
    return None
