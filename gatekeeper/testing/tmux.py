"""A real tmux server on a private socket, driven as a given account."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.testing.accounts import Account, run_as
from gatekeeper.testing.poll import wait_until


@dataclass
class Tmux:
    """One tmux server at ``socket``, run as ``account`` (``None``: the current user)."""

    socket: str
    account: Account | None = None

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """``tmux -S SOCKET ARGS`` as the account; raise on failure when ``check``."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "xterm"}
        if self.account is not None:
            env["HOME"] = self.account.home
        result = run_as(self.account, ["tmux", "-S", self.socket, *args], env)
        if check and result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            raise AssertionError(f"tmux {' '.join(args)} failed ({result.returncode}): {stderr}")
        return result

    def out(self, *args: str) -> str:
        """The standard output of a tmux command."""
        return self.cmd(*args).stdout.decode(errors="replace")

    def capture(self, target: str) -> str:
        """What the pane ``target`` shows now (wrapped lines joined)."""
        return self.out("capture-pane", "-p", "-J", "-t", target)

    def wait_screen(self, target: str, text: str, timeout: float = 10.0) -> str:
        """Poll until ``text`` is on the screen of ``target``; that screen."""
        return wait_until(
            lambda: s if text in (s := self.capture(target)) else None,
            timeout,
            f"{text!r} on the screen of {target}",
        )

    def pid(self) -> int | None:
        """The server's pid, ``None`` when no server answers."""
        result = self.cmd("display-message", "-p", "#{pid}", check=False)
        text = result.stdout.decode().strip()
        return int(text) if result.returncode == 0 and text.isdigit() else None

    def kill(self) -> None:
        """Stop the server, wait for it to exit and remove its socket."""
        pid = self.pid()
        self.cmd("kill-server", check=False)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                wait_until(lambda: not Path(f"/proc/{pid}").exists(), 5, "tmux server exit")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
