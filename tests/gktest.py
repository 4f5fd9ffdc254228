"""Shared helpers for the integration and end-to-end tiers.

Real components only: a real systemd-journald in its own namespace, real
tmux servers, real accounts created with useradd, the gatekeeper run through
its installed ``python -I`` launcher. Nothing here sleeps to synchronise:
everything waits by polling with a deadline (:func:`wait_until`).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
GK_PREFIX = Path(os.environ.get("GK_PREFIX", "/opt/ssh-gatekeeper-dev"))
VENV = GK_PREFIX / "venv"
#: The gatekeeper under test; the packaging tier points this at /usr/bin/gatekeeper.
GATEKEEPER = Path(os.environ.get("GK_GATEKEEPER", str(VENV / "bin" / "gatekeeper")))
GATEKEEPERCTL = Path(os.environ.get("GK_GATEKEEPERCTL", str(VENV / "bin" / "gatekeeperctl")))
PYTHON = VENV / "bin" / "python"


def require(condition: bool, what: str) -> None:
    """Skip when a tool or privilege is missing - but fail under CI, where nothing may skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test and missing in CI: {what}")
    pytest.skip(f"missing: {what}")


def require_tool(*names: str) -> None:
    for name in names:
        require(shutil.which(name) is not None or Path(name).exists(), name)


def require_root() -> None:
    require(os.geteuid() == 0, "root (to create throwaway accounts)")


class WaitTimeoutError(AssertionError):
    pass


def wait_until(
    probe: Callable[[], T | bool | None], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    interval = 0.01
    while True:
        value = probe()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise WaitTimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # polling interval, not synchronisation
        interval = min(interval * 2, 0.2)


def shared_dir(prefix: str = "gk-test-") -> Path:
    """A root-owned 0755 directory under /tmp that other accounts can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def write_root_file(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- journald


@dataclass
class Journal:
    """A private systemd-journald namespace, read back with journalctl."""

    namespace: str
    process: subprocess.Popen[bytes]

    @property
    def socket(self) -> str:
        return f"/run/systemd/journal.{self.namespace}/socket"

    def records(self, *matches: str, identifier: str | None = "gatekeeper") -> list[dict[str, Any]]:
        argv = ["journalctl", f"--namespace={self.namespace}", "-o", "json", "--no-pager"]
        if identifier:
            argv.append(f"SYSLOG_IDENTIFIER={identifier}")
        argv += list(matches)
        out = subprocess.run(argv, capture_output=True, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def messages(self, *matches: str) -> list[dict[str, Any]]:
        """The JSON records (MESSAGE) of gatekeeper entries matching ``matches``."""
        return [json.loads(r["MESSAGE"]) for r in self.records(*matches)]

    def wait_for(
        self, *matches: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        return wait_until(
            lambda: r if len(r := self.records(*matches)) >= count else None,
            timeout,
            f"{count} journal record(s) matching {matches}",
        )

    def by_connection(self, connection_id: str) -> list[dict[str, Any]]:
        return self.records(f"GATEKEEPER_CONNECTION_ID={connection_id}")


@contextlib.contextmanager
def journald(namespace: str) -> Iterator[Journal]:
    binary = "/lib/systemd/systemd-journald"
    require(Path(binary).exists(), binary)
    process = subprocess.Popen(
        [binary, namespace], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = Journal(namespace, process)
    # A namespaced journald exits after 30 s without a stdout stream (it expects socket
    # activation to restart it): hold one stream open so a quiet stretch of a test
    # session does not turn every later audit write into exit 75.
    keepalive = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        wait_until(lambda: Path(journal.socket).is_socket(), 10, "journald socket")
        stdout_socket = str(Path(journal.socket).with_name("stdout"))
        wait_until(lambda: Path(stdout_socket).is_socket(), 10, "journald stdout socket")
        keepalive.connect(stdout_socket)
        yield journal
    finally:
        keepalive.close()
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
            process.wait()
        machine_id = (
            Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
        )
        for path in (
            Path(f"/var/log/journal/{machine_id}.{namespace}"),
            Path(f"/run/log/journal/{machine_id}.{namespace}"),
            Path(f"/run/systemd/journal.{namespace}"),
        ):
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str

    @property
    def groups(self) -> list[int]:
        return os.getgrouplist(self.name, self.gid)


def _run(argv: Sequence[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


#: uids of the throwaway accounts this test session deleted (tests/conftest.py checks,
#: at the end of the session, that none of them left an ExposeAuthInfo file behind).
DELETED_UIDS: set[int] = set()


def live_pids(uid: int) -> list[int]:
    """Pids of the processes (zombies aside) whose /proc entry ``uid`` owns."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            if entry.stat().st_uid == uid and state not in {"Z", "X"}:
                found.append(int(entry.name))
    return found


def auth_info_files(uid: int) -> list[Path]:
    """sshd's ExposeAuthInfo files (``/tmp/sshauth.*``) owned by ``uid``.

    sshd-session deletes the file when the connection closes; a session killed
    with SIGKILL (``pkill -u``, a stopped sshd) leaves it behind.
    """
    found = []
    for path in Path("/tmp").glob("sshauth.*"):
        with contextlib.suppress(OSError):
            info = path.lstat()
            if info.st_uid == uid and stat.S_ISREG(info.st_mode):
                found.append(path)
    return found


def remove_auth_info(uid: int) -> None:
    """Remove ``uid``'s ExposeAuthInfo files (only that uid's: other suites may be running)."""
    for path in auth_info_files(uid):
        path.unlink(missing_ok=True)


def delete_account(name: str) -> None:
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(name)
        subprocess.run(["pkill", "-KILL", "-u", name], check=False, capture_output=True)
        # Best effort: SIGKILL is delivered asynchronously; a process still dying
        # could hold the uid (userdel refuses) or be the one sshd-session's file is for.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not live_pids(entry.pw_uid), 5.0, f"{name}'s processes to exit")
        subprocess.run(["userdel", name], check=False, capture_output=True)
        remove_auth_info(entry.pw_uid)
        DELETED_UIDS.add(entry.pw_uid)
        if entry.pw_dir.startswith("/tmp/gk-home-"):
            shutil.rmtree(entry.pw_dir, ignore_errors=True)


def delete_group(name: str) -> None:
    with contextlib.suppress(KeyError):
        grp.getgrnam(name)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def create_group(name: str) -> int:
    delete_group(name)
    _run(["groupadd", name])
    return grp.getgrnam(name).gr_gid


def create_account(name: str, groups: Sequence[str] = (), shell: str = "/bin/sh") -> Account:
    """A throwaway account: /bin/sh, root-owned home, key login possible (password '*')."""
    delete_account(name)
    home = Path(f"/tmp/gk-home-{name}")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o755)
    argv = [
        "useradd",
        "--no-create-home",
        "--home-dir",
        str(home),
        "--shell",
        shell,
        "--user-group",
    ]
    if groups:
        argv += ["--groups", ",".join(groups)]
    _run([*argv, name])
    _run(["usermod", "-p", "*", name])
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def run_as(
    account: Account | None,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` as ``account`` (with its groups) and a given, complete environment."""
    if account is not None:
        kwargs.update(user=account.uid, group=account.gid, extra_groups=account.groups)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 30)
    return subprocess.run(list(argv), env=dict(env or {}), check=False, **kwargs)


def as_user_argv(account: Account, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """An argv that runs ``argv`` as ``account`` with exactly ``env`` (for tmux panes)."""
    return [
        "setpriv",
        f"--reuid={account.uid}",
        f"--regid={account.gid}",
        "--init-groups",
        "--reset-env",
        "env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        *argv,
    ]


# --------------------------------------------------------------------------- tmux


@dataclass
class Tmux:
    """One tmux server at ``socket``, run as ``account`` (``None``: the current user)."""

    socket: str
    account: Account | None = None

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "xterm"}
        if self.account is not None:
            env["HOME"] = self.account.home
        result = run_as(self.account, ["tmux", "-S", self.socket, *args], env)
        if check and result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            raise AssertionError(f"tmux {' '.join(args)} failed ({result.returncode}): {stderr}")
        return result

    def out(self, *args: str) -> str:
        return self.cmd(*args).stdout.decode(errors="replace")

    def capture(self, target: str) -> str:
        return self.out("capture-pane", "-p", "-J", "-t", target)

    def wait_screen(self, target: str, text: str, timeout: float = 10.0) -> str:
        return wait_until(
            lambda: s if text in (s := self.capture(target)) else None,
            timeout,
            f"{text!r} on the screen of {target}",
        )

    def pid(self) -> int | None:
        result = self.cmd("display-message", "-p", "#{pid}", check=False)
        text = result.stdout.decode().strip()
        return int(text) if result.returncode == 0 and text.isdigit() else None

    def kill(self) -> None:
        pid = self.pid()
        self.cmd("kill-server", check=False)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                wait_until(lambda: not Path(f"/proc/{pid}").exists(), 5, "tmux server exit")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
