"""Processes by pid, read from /proc: never by name (other users' processes share the box)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


def alive(pid: int) -> bool:
    """Running (a zombie counts as gone: nothing may reap it in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line, NULs as spaces (sshd rewrites its own into one string)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def ppid(pid: int) -> int:
    """The parent's pid, 0 when ``pid`` is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def uid(pid: int) -> int | None:
    """The real uid of ``pid``, ``None`` when it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def pids() -> list[int]:
    """Every pid in /proc now."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def children(parent: int) -> list[int]:
    """The direct children of ``parent`` (sshd's per-connection processes, say)."""
    return [pid for pid in pids() if ppid(pid) == parent]


def terminate(victims: list[int], grace: float = 5.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL - each pid individually."""
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval
    for pid in victims:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stop(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Terminate a child we started and reap it; SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
