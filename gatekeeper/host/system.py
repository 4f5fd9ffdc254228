"""Facts about this machine the host side and ``doctor`` both ask: accounts, groups, tmux.

Standard library only (no libtmux), so ``gatekeeperctl doctor`` can use it
without the host-side tmux control. ``gatekeeper.host.control`` re-exports the
account helpers under their old names.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess

__all__ = ["group_members", "in_group", "tmux_version", "uid_of", "user_name"]


def user_name(uid: int) -> str:
    """The account name of ``uid`` (the uid itself if it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def uid_of(user: str) -> int | None:
    """The uid of account ``user``, or ``None``."""
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def group_members(name: str) -> set[str]:
    """Every account in group ``name``: listed members and those with it as primary group."""
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return set()
    members = set(entry.gr_mem)
    members.update(p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid)
    return members


def in_group(user: str, group: str) -> bool:
    """Whether ``user`` is a member of ``group`` (primary or supplementary)."""
    try:
        entry = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return False
    return gid in os.getgrouplist(user, entry.pw_gid)


def tmux_version(binary: str) -> tuple[int, int] | str:
    """``(major, minor)`` of ``tmux -V``, or the error text."""
    try:
        result = subprocess.run(
            [binary, "-V"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    match = re.search(r"(\d+)\.(\d+)", result.stdout)
    if result.returncode != 0 or match is None:
        return f"cannot read the version from {result.stdout.strip()!r}"
    return int(match.group(1)), int(match.group(2))
