"""End-to-end helpers: deployments behind real sshds, and a probe of the gatekeeper's environment.

The probe: a policy whose audit ``file`` sink is a FIFO. The gatekeeper
writes its record before exec, so it blocks in ``open()`` of the FIFO until we
read it - long enough to read ``/proc/PID/environ``, the environment sshd, PAM
and the login shell really handed the gatekeeper. No mock, no sleep: the
gatekeeper itself holds still. ``on_failure = "allow"`` in that policy
because ``fsync()`` of a FIFO fails; the record has been written by then.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gksshd
import gktest


@dataclass
class Probe:
    """One connection observed: the gatekeeper's environment and record, the client's result."""

    env: dict[str, str] | None  # None: the gatekeeper never ran
    pid: int | None
    record: dict[str, Any] | None
    result: subprocess.CompletedProcess[bytes]
    extra: dict[str, Any]


def _gatekeeper_pid(uid: int, policy: Path) -> int | None:
    """The launcher process (``python -I <gatekeeper> --policy POLICY``) running as ``uid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid != uid:
                continue
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if b"-I" in args and str(policy).encode() in args:
                return int(entry.name)
    return None


def read_fifo(fifo: Path, timeout: float = 15.0) -> bytes:
    """Open the FIFO for reading (releasing the blocked writer) and read until it closes."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if chunk:
                data += chunk
            elif data.endswith(b"\n"):
                return data  # the writer wrote its line and closed
            # EOF before any data: the writer has not opened yet (select keeps polling)
    finally:
        os.close(fd)
    return data


def probe(
    sshd: gksshd.Sshd,
    key: gksshd.Key,
    account: gktest.Account,
    policy: Path,
    fifo: Path,
    *options: str,
    command: Sequence[str] = (),
    env: dict[str, str] | None = None,
    during: Any = None,
    agent: Path | None = None,
    timeout: float = 30.0,
) -> Probe:
    """Connect, read the blocked gatekeeper's environment, then release it and collect everything.

    ``agent``: use (and with ``-A`` forward) this ssh-agent instead of the harness's
    ``IdentityAgent=none`` (ssh takes the first value given, so it is replaced in place).
    """
    argv = sshd.ssh_argv(key, account.name, "-o", "LogLevel=ERROR", *options, command=command)
    if agent is not None:
        argv = [f"IdentityAgent={agent}" if a == "IdentityAgent=none" else a for a in argv]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**gksshd.client_env(), **(env or {})},
    )
    try:
        found = gktest.wait_until(
            lambda: _gatekeeper_pid(account.uid, policy) or (process.poll() is not None and -1),
            timeout,
            "the gatekeeper (or the client's exit)",
        )
        pid = found if found != -1 else None
        environment: dict[str, str] | None = None
        extra: dict[str, Any] = {}
        record = None
        if pid is not None:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            environment = dict(
                item.decode(errors="surrogateescape").partition("=")[::2]
                for item in raw.split(b"\0")
                if item
            )
            if during is not None:
                extra = during(pid, environment) or {}
            line = read_fifo(fifo)
            record = json.loads(line) if line.strip() else None
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    result = subprocess.CompletedProcess(argv, process.returncode, out, err)
    return Probe(environment, pid, record, result, extra)


def doctor(policy: Path, config: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``gatekeeperctl doctor --json`` for a deployment: (check, subject) -> findings."""
    result = subprocess.run(
        [
            str(gktest.GATEKEEPERCTL),
            "doctor",
            "--json",
            "--policy",
            str(policy),
            "--sshd-config",
            str(config),
            "--gatekeeper",
            str(gktest.GATEKEEPER),
        ],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for check in json.loads(result.stdout)["checks"]:
        found.setdefault((check["check"], check["subject"]), []).append(check)
    return found


def status(findings: dict[tuple[str, str], list[dict[str, Any]]], check: str, subject: str) -> str:
    """The worst status of one check for one subject (``missing`` if doctor has no such line)."""
    rows = findings.get((check, subject), [])
    for worst in ("fail", "warn", "ok"):
        if any(r["status"] == worst for r in rows):
            return worst
    return "missing"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"
