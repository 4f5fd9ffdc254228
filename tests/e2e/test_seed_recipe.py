"""The README's seed recipe, literally, through a real sshd: the host keeps its shell.

Host and guest are both in the share group (the how-to's setup, SECURITY.md
§30). The policy is etc/gatekeeper.toml with only the names, the socket's
directory and the audit sink replaced; the guest account comes from
``gatekeeperctl guest add``; the sshd drop-in from ``sshd-config``; the session
from the host's own ``gatekeeperctl share``.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.accounts, pytest.mark.tmux]

SEED = Path(__file__).resolve().parents[2] / "etc" / "gatekeeper.toml"


def test_the_seed_recipe_keeps_the_host_out_of_the_match_and_lets_the_guest_watch(
    site, journal, term
) -> None:
    tag = secrets.token_hex(2)
    group, host_name, guest_name = f"gk-tg-{tag}", f"gk-alice-{tag}", f"gk-pair-{tag}"
    gktest.create_group(group)
    host = gktest.create_account(host_name, [group], "/bin/bash")  # login shell, not shell=
    directory = site.root / f"seed-{tag}" / "shared"
    socket = directory / "sock"
    try:
        made = subprocess.run(
            [str(gktest.GATEKEEPERCTL), "guest", "add", guest_name, "--group", group],
            capture_output=True,
            check=False,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        text = SEED.read_text()
        for old, new in (
            ('"alice"', f'"{host_name}"'),
            ('"pair"', f'"{guest_name}"'),
            ("/run/gatekeeper/shared/sock", str(socket)),
            (
                'sink = "journald"              # or "file"',
                f'sink = "journald"\njournal_socket = "{journal.socket}"',
            ),
        ):
            assert old in text, old
            text = text.replace(old, new)
        policy = gktest.write_root_file(site.root / f"seed-{tag}.toml", text)
        check = subprocess.run(
            [str(gktest.GATEKEEPERCTL), "check", "--no-cache", str(policy)],
            capture_output=True,
            check=False,
            text=True,
        )
        assert check.returncode == 0, check.stdout
        # Step 5 of the README: root creates the socket directory once.
        directory.parent.mkdir(mode=0o755)
        subprocess.run(
            ["install", "-d", "-o", host_name, "-g", group, "-m", "2750", str(directory)],
            check=True,
        )
        sshd = site.start(f"seed-{tag}", gksshd.sshd_config(policy))
        host_key, guest_key = site.key(f"host-{tag}"), site.key(f"guest-{tag}")
        site.authorize(host_name, host_key)
        site.authorize(guest_name, guest_key)
        # The host, in the guest group, is not matched: its own shell runs its command.
        assert site.effective(sshd, host_name)["forcecommand"] == ["none"]
        own = sshd.ssh(host_key, host_name, command=["id", "-un"])
        assert (own.returncode, own.stdout) == (0, f"{host_name}\n".encode()), own.stderr
        # Step 7: the host shares the session with its own gatekeeperctl.
        shared = gktest.run_as(
            host,
            [str(gktest.GATEKEEPERCTL), "share", "shared", "--policy", str(policy)],
            {"PATH": "/usr/bin:/bin", "HOME": host.home, "LANG": "C.UTF-8", "TERM": "xterm"},
        )
        assert shared.returncode == 0, shared.stderr
        marker = f"SEED-{tag}"
        tmux = ["/usr/bin/tmux", "-S", str(socket)]
        gktest.run_as(host, [*tmux, "send-keys", "-t", "=shared:", f"echo {marker}", "Enter"])
        listed = sshd.ssh(guest_key, guest_name, command=["list"])
        assert b"shared" in listed.stdout
        assert b"read-only   running" in listed.stdout, listed.stdout
        pane = term.run(sshd.ssh_argv(guest_key, guest_name, "-tt"))
        term.tmux.wait_screen(pane, marker, timeout=30)
        term.close(pane)
        record = journal.messages(f"GATEKEEPER_USER={guest_name}")[-1]
        assert (record["decision"], record["session"], record["mode"]) == (
            "allow",
            "shared",
            "read-only",
        )
    finally:
        subprocess.run(
            ["setpriv", f"--reuid={host.uid}", f"--regid={host.gid}", "--init-groups",
             "/usr/bin/tmux", "-S", str(socket), "kill-server"],
            capture_output=True, check=False,
        )  # fmt: skip
        subprocess.run(
            [str(gktest.GATEKEEPERCTL), "guest", "remove", guest_name],
            capture_output=True,
            check=False,
        )
        gktest.delete_account(guest_name)  # whatever `guest remove` may have left
        shutil.rmtree(f"/var/lib/gatekeeper/home/{guest_name}", ignore_errors=True)
        # userdel refuses an account with processes: let the host's tmux server exit first.
        gktest.wait_until(
            lambda: _gone(host_name), timeout=30, what=f"{host_name}'s processes to exit"
        )
        gktest.delete_account(host_name)
        gktest.delete_group(group)


def _gone(user: str) -> bool:
    """No process runs as ``user`` (SIGKILL any left, for the next poll)."""
    if subprocess.run(["pgrep", "-u", user], capture_output=True, check=False).returncode == 1:
        return True
    subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True, check=False)
    return False
