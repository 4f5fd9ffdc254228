"""Fixtures for the end-to-end tier: a hardened deployment behind a real sshd.

One deployment per test session (starting sshd, tmux and journald per test
would blow the time budget): the throwaway accounts from the root conftest, a
host tmux session shared by hand the way tmux >= 3.3 needs it (socket 0660 in
the share group, ``server-access``), a root-owned policy whose audit goes to
the session's journald namespace, and an sshd whose only drop-in is the
output of the real ``gatekeeperctl sshd-config``. Tests that need a different
sshd (weakened, ForceCommand-only, broken policy) start their own in the site.
"""

from __future__ import annotations

import grp
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gksshd
import gktest
import pytest
from gkhost import HostSession, start_host_session

PROJECT_TEXT = "the project file the guest may read"


@dataclass
class Deployment:
    site: gksshd.Site
    sshd: gksshd.Sshd
    policy: Path
    host: HostSession
    accounts: object
    keys: dict[str, gksshd.Key]
    offline_socket: str
    project_file: Path

    def ssh(self, who: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        """``ssh`` as account role ``who`` (guest, pairer, member, outsider) with its key."""
        account = getattr(self.accounts, who)
        return self.sshd.ssh(self.keys[who], account.name, *args, **kwargs)

    def argv(self, who: str, *options: str, command: tuple[str, ...] = ()) -> list[str]:
        account = getattr(self.accounts, who)
        return self.sshd.ssh_argv(self.keys[who], account.name, *options, command=command)


def policy_text(
    journal_socket: str, *, accounts, host_socket: str, offline: str, project_file: Path, keys
) -> str:
    return f"""\
version = 1

[audit]
journal_socket = "{journal_socket}"

[people.alice]
keys = ["{keys["member"].fingerprint}"]

[people.bob]
keys = ["{keys["bob"].fingerprint}"]

[sessions.shared]
socket = "{host_socket}"
owner = "{accounts.host.name}"
target = "shared"

[sessions.offline]
socket = "{offline}"
owner = "{accounts.host.name}"
target = "offline"

[programs.editor]
argv = ["/usr/bin/vim.basic", "-Z", "-R", "-u", "DEFAULTS", "-i", "NONE", "--noplugin",
        "--", "{project_file}"]
sandbox = true

[programs.printenv]
argv = ["/usr/bin/env"]
sandbox = true

[[grant]]
users = ["{accounts.guest.name}"]
session = "shared"
mode = "read-only"
default = true

[[grant]]
users = ["{accounts.guest.name}"]
program = "editor"

[[grant]]
users = ["{accounts.guest.name}"]
program = "printenv"

[[grant]]
users = ["{accounts.guest.name}"]
session = "offline"

[[grant]]
users = ["{accounts.pairer.name}"]
session = "shared"
mode = "read-write"

[[grant]]
people = ["alice", "bob"]
users = ["{accounts.member.name}"]
session = "shared"
mode = "read-only"
"""


@pytest.fixture(scope="session")
def site() -> Iterator[gksshd.Site]:
    with gksshd.site() as made:
        yield made


@pytest.fixture(scope="session")
def deployment(site, accounts, journal) -> Iterator[Deployment]:
    gktest.require(gktest.GATEKEEPER.exists(), f"{gktest.GATEKEEPER} (run scripts/bootstrap)")
    gktest.require_tool("tmux", "/usr/bin/vim.basic")
    gid = grp.getgrnam(accounts.group).gr_gid
    host = start_host_session(accounts.host, site.root / "host", gid)
    try:
        host.tmux.cmd("server-access", "-ar", accounts.guest.name)
        host.tmux.cmd("server-access", "-aw", accounts.pairer.name)
        host.tmux.cmd("server-access", "-ar", accounts.member.name)
        keys = {role: site.key(role) for role in ("guest", "pairer", "member", "outsider", "bob")}
        site.authorize(accounts.guest.name, keys["guest"])
        site.authorize(accounts.pairer.name, keys["pairer"])
        site.authorize(accounts.member.name, keys["member"], keys["bob"])
        site.authorize(accounts.outsider.name, keys["outsider"])
        project = gktest.write_root_file(site.root / "project.txt", PROJECT_TEXT + "\n")
        offline = str(site.root / "host" / "offline.sock")
        policy = gktest.write_root_file(
            site.root / "policy.toml",
            policy_text(
                journal.socket,
                accounts=accounts,
                host_socket=host.socket,
                offline=offline,
                project_file=project,
                keys=keys,
            ),
        )
        sshd = site.start("hardened", gksshd.sshd_config(policy))
        yield Deployment(site, sshd, policy, host, accounts, keys, offline, project)
    finally:
        host.tmux.kill()


@pytest.fixture
def term(site) -> Iterator[gksshd.Terminal]:
    directory = site.root / f"term-{len(list(site.root.glob('term-*')))}"
    directory.mkdir()
    with gksshd.terminal(directory) as made:
        yield made


@dataclass
class Weak:
    """A deliberately weakened deployment: what the corpus attacks and doctor must catch."""

    account: gktest.Account
    key: gksshd.Key
    policy: Path
    sshd: gksshd.Sshd


@pytest.fixture(scope="session")
def weak(deployment, journal) -> Iterator[Weak]:
    """bash login shell, a guest-owned home with a planted ~/.bashrc, ForceCommand only."""
    import os  # noqa: PLC0415 - only this fixture chowns

    site = deployment.site
    name = f"gk-weak-{site.root.name[-8:]}"
    account = gktest.create_account(name, shell="/bin/bash")  # noqa: S604 - the weakness under test
    try:
        os.chown(account.home, account.uid, account.gid)
        bashrc = Path(account.home) / ".bashrc"
        # Corpus ENV-04: Debian's bash reads ~/.bashrc for sshd's `bash -c`.
        bashrc.write_text('exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
        os.chown(bashrc, account.uid, account.gid)
        key = site.key("weak")
        site.authorize(name, key)
        policy = gktest.write_root_file(
            site.root / "weak-policy.toml",
            f"""version = 1
[audit]
journal_socket = "{journal.socket}"
[sessions.shared]
socket = "{deployment.host.socket}"
owner = "{deployment.accounts.host.name}"
target = "shared"
[[grant]]
users = ["{name}"]
session = "shared"
""",
        )
        dropin = f"Match User {name}\n    ForceCommand {gktest.GATEKEEPER} --policy {policy}\n"
        sshd = site.start("weak", dropin)
        yield Weak(account, key, policy, sshd)
    finally:
        gktest.delete_account(name)
