"""The exact argv and environment to exec for an allowed decision (pure).

Invariants (SPEC §1, §4; SECURITY.md §17-19):

* argv comes from the policy only; no element is ever derived from guest text
  (the session name the guest typed was matched exactly against a policy key,
  and tmux gets the policy's ``target``, never the typed word);
* tmux is always ``-N`` (never start a server at that path), ``attach-session
  -E`` (never copy the guest's environment into the host's session) and
  ``-t =TARGET`` (exact session name, no prefix or pattern resolution);
* the environment is built from scratch: nothing the client, PAM or the
  login shell set survives (no ``LD_*``, ``PYTHON*``, ``SSH_AUTH_SOCK``,
  ``DISPLAY``, ``LC_*``, ``VIMINIT``, ``TMUX``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from gatekeeper.login import messages
from gatekeeper.login.decide import AttachSession, RunProgram
from gatekeeper.policy.model import READ_ONLY, Connection, Policy

if TYPE_CHECKING:
    from collections.abc import Mapping

SAFE_TERM: Final = "xterm"
_TERM = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ExecPlan:
    """What to ``os.execve``: an absolute path, its argv and its whole environment."""

    path: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    #: One line for the guest's stderr just before exec ("" for none): the recording notice.
    notice: str = ""


def safe_term(term: str | None) -> str:
    """The client's TERM if it is a plain terminal name, else a safe default."""
    if term is not None and _TERM.fullmatch(term):
        return term
    return SAFE_TERM


def environment(connection: Connection) -> dict[str, str]:
    """The target's whole environment, from the user database and constants."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": connection.home,
        "USER": connection.user,
        "LOGNAME": connection.user,
        "LANG": "C.UTF-8",
        "TERM": safe_term(connection.term),
        "SHELL": "/bin/false",
        "LESSSECURE": "1",
    }


def tmux_argv(binary: str, socket: str, target: str, *, read_only: bool) -> tuple[str, ...]:
    """``tmux -N -S SOCKET attach-session -E [-r] -t =TARGET``."""
    argv = [binary, "-N", "-S", socket, "attach-session", "-E"]
    if read_only:
        argv.append("-r")
    argv += ["-t", f"={target}"]
    return tuple(argv)


def plan(decision: AttachSession | RunProgram, policy: Policy, connection: Connection) -> ExecPlan:
    """Build the exec plan for an allowed attach or run."""
    env = environment(connection)
    if isinstance(decision, AttachSession):
        session = policy.sessions[decision.session]
        argv = tmux_argv(
            policy.tmux_binary,
            session.socket,
            session.target,
            read_only=decision.mode == READ_ONLY,
        )
        notice = messages.recorded(decision.session) if session.recorded else ""
        return ExecPlan(policy.tmux_binary, argv, env, notice)
    program = policy.programs[decision.program]
    return ExecPlan(program.argv[0], program.argv, env)
