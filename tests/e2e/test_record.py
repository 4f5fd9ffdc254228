"""Recording end to end: a guest through a real sshd watches a session ``share`` records.

The host runs the real ``gatekeeperctl share`` with ``record = "required"`` and
attaches its own client on a pty; the guest logs in with ``ssh -tt`` through an
sshd whose only drop-in is ``gatekeeperctl sshd-config``. What each of them
sees is read with capture-pane on the terminal server.
"""

from __future__ import annotations

import grp
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

NOTICE = "gatekeeper: session 'shared' is recorded: everything shown in it is kept with timing."


def host_env(account: gktest.Account) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": account.home, "LANG": "C.UTF-8", "TERM": "xterm"}


@pytest.fixture
def recorded(site, accounts, journal) -> Iterator[tuple[Path, Path, gktest.Tmux]]:
    """A share directory, a recorded policy and the host's (future) server; cleaned up.

    The test also requests ``deployment``: it authorizes the guest's key in the site.
    """
    directory = site.root / f"recorded-{secrets.token_hex(2)}"
    directory.mkdir()
    os.chown(directory, accounts.host.uid, grp.getgrnam(accounts.group).gr_gid)
    directory.chmod(0o2750)
    socket = str(directory / "sock")
    policy = gktest.write_root_file(
        directory.with_suffix(".toml"),
        f"""version = 1
[audit]
journal_socket = "{journal.socket}"

[sessions.shared]
socket = "{socket}"
owner = "{accounts.host.name}"
target = "shared"
record = "required"
recordings = "{directory}/rec"

[[grant]]
users = ["{accounts.guest.name}"]
session = "shared"
mode = "read-only"
""",
    )
    tmux = gktest.Tmux(socket, accounts.host)
    try:
        yield policy, directory / "rec", tmux
    finally:
        watcher = tmux.cmd("show-options", "-gqv", "@gatekeeper-watcher", check=False)
        pids = [tmux.pid()]
        if watcher.stdout.strip().isdigit():
            pids.append(int(watcher.stdout))
        tmux.cmd("kill-server", check=False)
        live = [p for p in pids if p is not None]
        gktest.wait_until(
            lambda: not any(Path(f"/proc/{p}").exists() for p in live), 15, "host server to exit"
        )


def screens(term: gksshd.Terminal, pane: str) -> str:
    """The pane's screen and, when it is in tmux's alternate screen, the normal one."""
    normal = term.tmux.cmd("capture-pane", "-p", "-a", "-t", pane, check=False)
    return term.tmux.capture(pane) + normal.stdout.decode(errors="replace")


def output(path: Path) -> str:
    lines = path.read_text().splitlines()[1:]
    return "".join(e[2] for e in map(json.loads, lines) if e[1] == "o")


def test_a_guest_over_ssh_is_told_recorded_and_the_host_sees_the_join(
    site, accounts, deployment, recorded, term
) -> None:
    policy, recordings, host = recorded
    share = gktest.run_as(
        accounts.host,
        [str(gktest.GATEKEEPERCTL), "share", "shared", "--policy", str(policy)],
        host_env(accounts.host),
        timeout=60,
    )
    assert share.returncode == 0, share.stderr
    sshd = site.start(f"recorded-{secrets.token_hex(2)}", gksshd.sshd_config(policy))
    try:
        host_pane = term.run(
            gktest.as_user_argv(
                accounts.host,
                ["/usr/bin/tmux", "-S", host.socket, "attach", "-t", "=shared"],
                host_env(accounts.host),
            )
        )
        gktest.wait_until(lambda: host.out("list-clients").strip(), 15, "the host's client")

        guest = term.run(
            sshd.ssh_argv(
                deployment.keys["guest"], accounts.guest.name, "-tt", command=("attach", "shared")
            )
        )
        gktest.wait_until(lambda: NOTICE in screens(term, guest), 30, "the recording notice")
        joined = f"gatekeeper: {accounts.guest.name} joined read-only"
        term.tmux.wait_screen(host_pane, joined, timeout=30)
        assert joined not in screens(term, guest)

        marker = f"REC-MARK-{secrets.token_hex(3)}"
        host.cmd("send-keys", "-t", "=shared:", f"echo {marker}", "Enter")
        term.tmux.wait_screen(guest, marker, timeout=30)

        def recorded_in(text: str) -> Path | None:
            return next((p for p in sorted(recordings.glob("*.cast")) if text in output(p)), None)

        path = gktest.wait_until(lambda: recorded_in(marker), 15, "the marker in a recording")
        times = [json.loads(line)[0] for line in path.read_text().splitlines()[1:]]
        assert times == sorted(times)
        assert len(set(times)) > 1

        # A pane the host opens while the guest watches is recorded too.
        pane = host.out("split-window", "-P", "-F", "#{pane_id}", "-t", "=shared:").strip()
        second = f"REC-SECOND-{secrets.token_hex(3)}"
        host.cmd("send-keys", "-t", pane, f"echo {second}", "Enter")
        term.tmux.wait_screen(guest, second, timeout=30)
        second_file = gktest.wait_until(lambda: recorded_in(second), 15, "the second pane's file")
        assert f"_p{pane[1:]}_" in second_file.name

        # Replay reproduces the host's marker on a fresh terminal.
        replay = term.run(
            gktest.as_user_argv(
                accounts.host,
                [str(gktest.GATEKEEPERCTL), "replay", "--speed", "50", "--idle-limit", "0.1",
                 str(path)],
                host_env(accounts.host),
            )
        )  # fmt: skip
        assert term.exit_status(replay) == 0
        assert marker in term.tmux.capture(replay)
        term.close(guest)
        term.tmux.wait_screen(host_pane, f"gatekeeper: {accounts.guest.name} left", timeout=30)
    finally:
        sshd.stop()
