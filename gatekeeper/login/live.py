"""Live state for the guest's informational verbs: is a session running, who watches.

Used on the connection path for ``list`` and the pre-exec probe, so it is
standard library only (no libtmux). Any tmux query runs the policy's tmux
binary with a fixed argv and a clean environment, never through a shell.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
from typing import TYPE_CHECKING, Any, Literal

from gatekeeper.login import messages
from gatekeeper.login.textsafe import escape

if TYPE_CHECKING:
    from gatekeeper.login.decide import Entitlement, Identity
    from gatekeeper.policy.model import Connection, Policy

SocketState = Literal["running", "stale", "missing", "inaccessible"]


def probe(path: str, timeout: float = 1.0) -> SocketState:
    """Whether a tmux server accepts connections at ``path`` (connect, then close)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except FileNotFoundError:
            return "missing"
        except PermissionError:
            return "inaccessible"
        except OSError as error:
            if error.errno == errno.ECONNREFUSED:
                return "stale"
            return "inaccessible"
    return "running"


def _list_clients(
    tmux: str, path: str, timeout: float
) -> subprocess.CompletedProcess[bytes] | None:
    """``tmux -N -S PATH list-clients`` as this uid, clean environment; ``None`` on failure.

    ``list-clients`` is one of the few commands a read-only client may run, and
    ``-N`` never starts a server at the path.
    """
    try:
        return subprocess.run(
            [tmux, "-N", "-S", path, "list-clients", "-F", "#{client_pid}"],
            capture_output=True,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _refused(result: subprocess.CompletedProcess[bytes]) -> bool:
    return b"access not allowed" in result.stdout + result.stderr


def viewers(tmux: str, path: str, timeout: float = 2.0) -> int | None:
    """How many clients are attached, or ``None`` if the server will not say."""
    result = _list_clients(tmux, path, timeout)
    if result is None or result.returncode != 0 or _refused(result):
        return None
    return len([line for line in result.stdout.splitlines() if line.strip()])


def access_allowed(tmux: str, path: str, timeout: float = 2.0) -> bool | None:
    """Whether the server at ``path`` lets this uid in (tmux >= 3.3 ``server-access``).

    Without a grant, tmux prints ``access not allowed`` and exits 0 - after
    the gatekeeper has exec'd it, the guest would see a bare line and a
    success code. Asking first lets the gatekeeper deny with a reason instead.
    ``None`` when tmux gave no clear answer (the attach itself will tell).
    """
    result = _list_clients(tmux, path, timeout)
    if result is None:
        return None
    if _refused(result):
        return False
    return True if result.returncode == 0 else None


def list_data(entitlements: tuple[Entitlement, ...], policy: Policy) -> dict[str, Any]:
    """The structure behind ``list --json``."""
    sessions: list[dict[str, Any]] = []
    programs: list[dict[str, Any]] = []
    for item in entitlements:
        if item.kind == "session":
            session = policy.sessions[item.name]
            running = probe(session.socket) == "running"
            # The attach's own pre-flight (preflight._session): a server that no
            # longer lets this uid in (after `kick`) is not running *for this guest*.
            if running and access_allowed(policy.tmux_binary, session.socket) is False:
                running = False
            count = viewers(policy.tmux_binary, session.socket) if running else None
            sessions.append(
                {
                    "name": item.name,
                    "mode": item.mode,
                    "default": item.default,
                    "running": running,
                    "viewers": count,
                }
            )
        else:
            programs.append({"name": item.name, "default": item.default})
    return {"sessions": sessions, "programs": programs}


def render_list(entitlements: tuple[Entitlement, ...], policy: Policy, *, as_json: bool) -> str:
    """``list``: the sessions and programs this identity may use, with live state."""
    data = list_data(entitlements, policy)
    if as_json:
        return json.dumps(data, ensure_ascii=True, sort_keys=True) + "\n"
    if not data["sessions"] and not data["programs"]:
        return messages.LIST_EMPTY + "\n"
    lines: list[str] = []
    if data["sessions"]:
        lines.append(messages.LIST_SESSIONS)
        for s in data["sessions"]:
            state = messages.LIST_RUNNING if s["running"] else messages.LIST_NOT_RUNNING
            if s["viewers"] is not None:
                state += messages.LIST_ATTACHED.format(count=s["viewers"])
            flag = messages.LIST_DEFAULT if s["default"] else ""
            lines.append(f"  {s['name']:<20} {s['mode']:<11} {state}{flag}")
    if data["programs"]:
        lines.append(messages.LIST_PROGRAMS)
        lines.extend(
            f"  {p['name']:<20}{messages.LIST_DEFAULT if p['default'] else ''}"
            for p in data["programs"]
        )
    return "\n".join(lines) + "\n"


def render_whoami(identity: Identity, connection: Connection, *, as_json: bool) -> str:
    """``whoami``: the identity as the gatekeeper sees it (all text escaped)."""
    data: dict[str, Any] = {
        "user": identity.user,
        "uid": connection.uid,
        "groups": sorted(connection.groups),
        "person": identity.person,
        "key_fingerprint": identity.key_fingerprint,
        "client_addr": connection.client_addr,
        "client_port": connection.client_port,
    }
    if as_json:
        return json.dumps(data, ensure_ascii=True, sort_keys=True) + "\n"
    lines = []
    for key, value in data.items():
        shown = ",".join(value) if isinstance(value, list) else value
        lines.append(f"{key}: {escape('-' if shown is None else str(shown))}")
    return "\n".join(lines) + "\n"
