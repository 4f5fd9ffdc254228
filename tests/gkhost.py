"""Host-side helpers for tests: a host's tmux session, an observer playing the guest."""

from __future__ import annotations

import os
import re
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

import gktest


@dataclass
class HostSession:
    """A host's tmux server on its own socket, shared the way `share` does it by hand."""

    tmux: gktest.Tmux
    socket: str
    name: str
    marker: str


def start_host_session(
    host: gktest.Account, directory: Path, group_gid: int, name: str = "shared"
) -> HostSession:
    """Start ``name`` on a host-owned 0750 directory, socket 0660 in the share group."""
    gktest.require_tool("tmux")
    directory.mkdir(mode=0o750)
    os.chown(directory, host.uid, group_gid)
    directory.chmod(0o750)
    socket = str(directory / "sock")
    tmux = gktest.Tmux(socket, host)
    marker = f"HOST-READY-{secrets.token_hex(3)}"
    tmux.cmd("-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "sh")
    tmux.cmd("set-option", "-g", "update-environment", "")
    tmux.cmd("send-keys", "-t", f"={name}:", f"echo {marker}", "Enter")
    tmux.wait_screen(f"={name}:", marker + "\n", timeout=10)
    os.chown(socket, host.uid, group_gid)
    Path(socket).chmod(0o660)
    return HostSession(tmux, socket, name, marker)


@dataclass
class Observer:
    """Root's private tmux server; each window runs one guest process on a real pty."""

    tmux: gktest.Tmux

    def spawn(self, account: gktest.Account, argv: list[str], env: dict[str, str]) -> str:
        """Run ``argv`` as ``account`` with exactly ``env`` on a fresh pty; return the pane.

        A small ``sh`` wrapper prints the exit status after the program ends and keeps
        the pane open: tmux may drop a dying pane's last output otherwise.
        """
        window = f"w{secrets.token_hex(3)}"
        wrapped = ["/bin/sh", "-c", '"$@"; echo "[gk-exit $?]"; exec sleep infinity', "sh", *argv]
        command = shlex.join(gktest.as_user_argv(account, wrapped, env))
        self.tmux.cmd("new-window", "-d", "-t", "obs:", "-n", window, command)
        return f"obs:{window}"

    def exit_status(self, target: str, timeout: float = 10.0) -> int:
        """Wait for the program in ``target`` to end and return its exit status."""

        def status() -> str | None:
            match = re.search(r"\[gk-exit (\d+)\]", self.tmux.capture(target))
            return match.group(1) if match else None

        return int(gktest.wait_until(status, timeout, f"{target} to exit"))

    def pane_pid(self, target: str) -> int:
        return int(self.tmux.out("display-message", "-p", "-t", target, "#{pane_pid}").strip())


def guest_env(command: str | None, **extra: str) -> dict[str, str]:
    """What sshd would hand the gatekeeper for a guest with a pty."""
    env = {
        "PATH": "/usr/bin:/bin",
        "TERM": "xterm",
        "SSH_TTY": "/dev/pts/99",
        "SSH_CONNECTION": "127.0.0.1 50022 127.0.0.1 22",
        "SSH_CLIENT": "127.0.0.1 50022 22",
    }
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    env.update(extra)
    return env
