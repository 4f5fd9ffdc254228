"""``gatekeeperctl guest add|remove`` with real accounts, and a real key login afterwards."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess
from pathlib import Path

import gktest
import pytest

from gatekeeper.deploy import guestset

pytestmark = [pytest.mark.sshd, pytest.mark.accounts]


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gktest.GATEKEEPERCTL), "guest", *args], capture_output=True, text=True, check=False
    )


def test_add_is_doctors_guest_idempotent_and_remove_cleans_up(site, accounts) -> None:
    name = f"gk-new-{secrets.token_hex(2)}"
    try:
        made = ctl("add", name, "--group", accounts.group)
        assert made.returncode == 0, made.stderr
        assert f"created account {name}" in made.stdout
        entry = pwd.getpwnam(name)
        assert entry.pw_shell == "/bin/sh"
        assert guestset.shape_problem(entry) is None
        assert os.stat(entry.pw_dir).st_uid == 0
        assert os.listdir(entry.pw_dir) == []
        assert accounts.group in guestset_groups(name)
        # Idempotent: nothing to change the second time.
        again = ctl("add", name, "--group", accounts.group)
        assert again.returncode == 0
        assert again.stdout == f"gatekeeperctl guest add: {name}: nothing to change\n"
        # Key login works (password '*', not locked): a real sshd, ForceCommand id.
        key = site.key(f"guest-{name}")
        site.authorize(name, key)
        sshd = site.start(f"guest-{name}", f"Match User {name}\n    ForceCommand /usr/bin/id -un\n")
        login = sshd.ssh(key, name)
        assert login.returncode == 0, login.stderr
        assert login.stdout.decode().strip() == name
        sshd.stop()
        gone = ctl("remove", name)
        assert gone.returncode == 0, gone.stderr
        assert f"deleted account {name}" in gone.stdout
        assert f"removed its home {entry.pw_dir}" in gone.stdout
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        assert not Path(entry.pw_dir).exists()
        assert ctl("remove", name).stdout.endswith("nothing to change\n")
    finally:
        gktest.delete_account(name)


def test_an_existing_account_that_is_not_a_guest_is_refused() -> None:
    name = f"gk-human-{secrets.token_hex(2)}"
    gktest.create_account(name, shell="/bin/bash")  # noqa: S604 - someone's own account
    try:
        for action in ("add", "remove"):
            refused = ctl(action, name)
            assert refused.returncode == 1, refused.stdout
            assert "not a guest account" in refused.stderr
            assert pwd.getpwnam(name).pw_shell == "/bin/bash"  # untouched
    finally:
        gktest.delete_account(name)


def guestset_groups(name: str) -> set[str]:
    entry = pwd.getpwnam(name)
    return {grp.getgrgid(g).gr_name for g in os.getgrouplist(name, entry.pw_gid)}
