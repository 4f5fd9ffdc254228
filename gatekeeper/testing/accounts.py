"""Throwaway accounts: ``/bin/sh``, root-owned home, key login possible, removed afterwards.

The home is root-owned so the account can plant nothing in it (no
``~/.ssh/rc``, no dotfiles a tool would read; SECURITY.md §1.4), and the
password is ``*``: no password login, but the account is not locked, so sshd
accepts its key.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.testing.poll import WaitTimeoutError, wait_until

#: Where :func:`create_account` puts a home unless told otherwise (and what it may remove).
HOME_PREFIX = "/tmp/gk-home-"  # noqa: S108 - a 0755 root-owned dir made fresh, never reused


class AccountExistsError(Exception):
    """:func:`create_account` was told not to replace an account that exists."""


@dataclass(frozen=True)
class Account:
    """One account as the kernel knows it."""

    name: str
    uid: int
    gid: int
    home: str

    @property
    def groups(self) -> list[int]:
        """Every gid of the account (its supplementary groups included)."""
        return os.getgrouplist(self.name, self.gid)


#: The account tools (useradd, userdel, pkill) live in /usr/sbin: a caller's PATH
#: (a test's, the demo's) may not name it, and is not what decides which tool runs.
_TOOLS_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _run(argv: Sequence[str], *, check: bool = True) -> None:
    subprocess.run(argv, check=check, capture_output=True, env=_TOOLS_ENV)


def write_root_file(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write ``text`` to ``path`` (as the caller, root) with ``mode``."""
    path.write_text(text)
    path.chmod(mode)
    return path


#: uids of the throwaway accounts this process deleted (the test suite checks, at the
#: end of its session, that none of them left an ExposeAuthInfo file behind).
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
    """Sshd's ExposeAuthInfo files (``/tmp/sshauth.*``) owned by ``uid``.

    sshd-session deletes the file when the connection closes; a session killed
    with SIGKILL (``pkill -u``, a stopped sshd) leaves it behind.
    """
    found = []
    for path in Path("/tmp").glob("sshauth.*"):  # noqa: S108 - where sshd writes them
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
    """Remove ``name``, its processes (by uid), its harness-made home and auth files.

    The ExposeAuthInfo files of sessions the kill ended are left behind by sshd.
    """
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(name)
        _run(["pkill", "-KILL", "-u", name], check=False)
        # Best effort: SIGKILL is delivered asynchronously; a process still dying
        # could hold the uid (userdel refuses) or be the one sshd-session's file is for.
        with contextlib.suppress(WaitTimeoutError):
            wait_until(lambda: not live_pids(entry.pw_uid), 5.0, f"{name}'s processes to exit")
        _run(["userdel", name], check=False)
        remove_auth_info(entry.pw_uid)
        DELETED_UIDS.add(entry.pw_uid)
        if entry.pw_dir.startswith(HOME_PREFIX):
            shutil.rmtree(entry.pw_dir, ignore_errors=True)


def delete_group(name: str) -> None:
    """Remove the group ``name`` if it exists."""
    with contextlib.suppress(KeyError):
        grp.getgrnam(name)
        _run(["groupdel", name], check=False)


def _make_room(
    name: str,
    what: str,
    find: Callable[[str], object],
    delete: Callable[[str], None],
    *,
    replace: bool,
) -> None:
    """Remove a leftover ``name`` (``replace``) or refuse to touch it."""
    if replace:
        delete(name)
        return
    with contextlib.suppress(KeyError):
        find(name)
        raise AccountExistsError(f"{what} {name} already exists")


def create_group(name: str, *, replace: bool = True) -> int:
    """A fresh group; its gid. ``replace=False`` refuses a group that exists."""
    _make_room(name, "group", grp.getgrnam, delete_group, replace=replace)
    _run(["groupadd", name])
    return grp.getgrnam(name).gr_gid


def create_account(
    name: str,
    groups: Sequence[str] = (),
    shell: str = "/bin/sh",
    *,
    home: Path | None = None,
    replace: bool = True,
) -> Account:
    """A throwaway account with a root-owned 0755 home (default ``/tmp/gk-home-NAME``).

    ``replace=True`` (the tests) first removes a leftover account of that name;
    ``replace=False`` (the demo) refuses one instead: it never touches an
    account it did not make.
    """
    _make_room(name, "account", pwd.getpwnam, delete_account, replace=replace)
    home = home if home is not None else Path(f"{HOME_PREFIX}{name}")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o755)
    argv = ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", shell]
    argv.append("--user-group")
    if groups:
        argv += ["--groups", ",".join(groups)]
    _run([*argv, name])
    _run(["usermod", "-p", "*", name])  # no password, but not locked: key login works
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def lookup(name: str) -> Account:
    """The existing account ``name``."""
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def run_as(
    account: Account | None,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` as ``account`` (with its groups) and exactly the environment ``env``.

    ``account=None`` runs as the caller. Output is captured, the timeout is
    30 s and the exit status is not checked, unless ``kwargs`` say otherwise.
    """
    if account is not None:
        kwargs.update(user=account.uid, group=account.gid, extra_groups=account.groups)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 30)
    check = bool(kwargs.pop("check", False))
    return subprocess.run(list(argv), env=dict(env or {}), check=check, **kwargs)


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
