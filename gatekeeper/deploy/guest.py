"""``gatekeeperctl guest add|remove NAME``: guest accounts the way ``doctor`` demands.

A guest account (docs/identity.md) has

* login shell ``/bin/sh`` (dash: ``sh -c`` reads no user file, SECURITY.md §1.3);
* a home owned by root, mode 0755, with nothing in it: nothing the guest can
  write, no dotfiles, no ``authorized_keys`` (keys come from the policy, or from
  a root-owned ``AuthorizedKeysFile``; SECURITY.md §1.4-1.5);
* password field ``*``: no password login, yet not *locked* (``!``), so key
  login works with and without PAM (sshd refuses a locked account when
  ``UsePAM no``).

Homes live under :data:`HOME_BASE`. ``add`` is idempotent and says what it
changed; it refuses an existing account that is not guest-shaped (someone's
own account). ``remove`` deletes the account and its root-owned home (``userdel
-r`` refuses a home the user does not own), and refuses a non-guest too.
Run as root; nothing is taken from the environment.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from typing import Any, Final

from gatekeeper.deploy import guestset

HOME_BASE: Final = "/var/lib/gatekeeper/home"
SHELL: Final = "/bin/sh"
_NAME: Final = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_TOOLS_PATH: Final = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


class GuestError(Exception):
    """The command cannot do what was asked; ``str(error)`` says why."""


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=_TOOLS_PATH)
    if result.returncode != 0:
        raise GuestError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def _password_field(name: str) -> str | None:
    try:
        with open("/etc/shadow", encoding="utf-8") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name and len(fields) > 1:
                    return fields[1]
    except OSError:
        return None
    return None


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise GuestError(f"{name!r} is not an account name (lowercase letters, digits, _ -)")


def add(name: str, groups: list[str], base: str = HOME_BASE) -> list[str]:
    """Create or complete the guest account ``name``; the list of what changed."""
    _check_name(name)
    for group in groups:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise GuestError(f"group {group} does not exist (groupadd {group})") from None
    changed: list[str] = []
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        home = os.path.join(base, name)
        os.makedirs(base, mode=0o755, exist_ok=True)
        os.makedirs(home, mode=0o755, exist_ok=True)
        os.chown(home, 0, 0)
        os.chmod(home, 0o755)  # noqa: S103 - root's, world-readable, nobody else may write
        _run(["useradd", "--no-create-home", "--home-dir", home, "--shell", SHELL,
              "--user-group", name])  # fmt: skip
        changed.append(f"created account {name} (shell {SHELL}, home {home} root:root 0755)")
        entry = pwd.getpwnam(name)
    else:
        if entry.pw_uid == 0:
            raise GuestError(f"{name} is root")
        problem = guestset.shape_problem(entry)
        if problem is not None:
            raise GuestError(f"{name} exists and is not a guest account: {problem}")
        if os.listdir(entry.pw_dir):
            raise GuestError(f"{name} exists but its home {entry.pw_dir} is not empty")
    if _password_field(name) != "*":
        _run(["usermod", "-p", "*", name])
        changed.append(f"password of {name} set to '*' (no password; key login only)")
    current = set(os.getgrouplist(name, entry.pw_gid))
    for group in groups:
        if grp.getgrnam(group).gr_gid not in current:
            _run(["usermod", "-a", "-G", group, name])
            changed.append(f"added {name} to group {group}")
    return changed


def remove(name: str, base: str = HOME_BASE) -> list[str]:
    """Delete the guest account ``name`` and its root-owned home; the list of what changed."""
    _check_name(name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return []
    if entry.pw_uid == 0:
        raise GuestError(f"{name} is root")
    problem = guestset.shape_problem(entry)
    if problem is not None:
        raise GuestError(f"{name} is not a guest account ({problem}): not removing it")
    _run(["userdel", name])
    changed = [f"deleted account {name}"]
    home = entry.pw_dir
    if os.path.dirname(home) == base and os.path.isdir(home) and not os.path.islink(home):
        shutil.rmtree(home)
        changed.append(f"removed its home {home}")
    elif os.path.isdir(home):
        changed.append(f"left its home {home} (not under {base})")
    return changed


def _run_command(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("gatekeeperctl guest: run as root", file=sys.stderr)
        return 1
    try:
        changed = add(args.name, args.group or []) if args.action == "add" else remove(args.name)
    except (GuestError, OSError) as error:
        print(f"gatekeeperctl guest {args.action}: {error}", file=sys.stderr)
        return 1
    for line in changed:
        print(f"gatekeeperctl guest {args.action}: {line}")
    if not changed:
        print(f"gatekeeperctl guest {args.action}: {args.name}: nothing to change")
    return 0


def register(subparsers: Any) -> None:
    """Add ``guest add`` / ``guest remove``."""
    parser = subparsers.add_parser(
        "guest",
        help="create or remove a guest account the way doctor demands (root)",
        description="Create (add) or delete (remove) a guest account: shell /bin/sh, a "
        f"root-owned empty home under {HOME_BASE}, password '*' (keys only). Idempotent.",
    )
    parser.add_argument("action", choices=("add", "remove"))
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--group",
        action="append",
        metavar="G",
        help="add: also make the account a member of group G (repeatable)",
    )
    parser.set_defaults(handler=_run_command)
