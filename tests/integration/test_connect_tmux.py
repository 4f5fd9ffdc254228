"""The gatekeeper as the guest, attaching to a real host tmux session (SPEC §1, §4).

The guest side runs on a real pty inside an observer tmux server, as the guest
account, through the installed ``python -I`` launcher; the host side is a
real tmux server owned by the host account. What the guest sees is read with
capture-pane on the observer; what reaches the host with capture-pane on the
host's server.
"""

from __future__ import annotations

import grp
import json
import os
import secrets

import gktest
import pytest
from gkhost import guest_env, start_host_session

pytestmark = [pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]


def session_policy(socket: str, owner: str, *, ro: str, rw: str, target: str = "shared") -> str:
    return f"""
[sessions.shared]
socket = "{socket}"
owner = "{owner}"
target = "{target}"

[[grant]]
users = ["{ro}"]
session = "shared"
mode = "read-only"
default = true

[[grant]]
users = ["{rw}"]
session = "shared"
mode = "read-write"
"""


def clients(host) -> list[tuple[int, str]]:
    out = host.tmux.out("list-clients", "-F", "#{client_pid} #{client_readonly}")
    return [(int(pid), flag) for pid, _, flag in (line.partition(" ") for line in out.splitlines())]


def test_read_only_guest_sees_the_host_and_cannot_type(
    accounts, host_session, observer, write_policy, journal, gatekeeper_bin
) -> None:
    host_session.tmux.cmd("server-access", "-ar", accounts.guest.name)
    policy = write_policy(
        session_policy(
            host_session.socket, accounts.host.name, ro=accounts.guest.name, rw=accounts.pairer.name
        )
    )
    pane = observer.spawn(
        accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], {**_env("attach shared")}
    )
    observer.tmux.wait_screen(pane, host_session.marker)

    # tmux's client pid is the gatekeeper's pid (it exec'd): the join key with the record.
    listed = gktest.wait_until(lambda: clients(host_session), 10, "the guest client")
    record = journal.messages(f"GATEKEEPER_USER={accounts.guest.name}")[-1]
    assert listed == [(record["pid"], "1")]
    assert record["decision"] == "allow"
    assert record["mode"] == "read-only"
    assert record["argv"] == [
        "/usr/bin/tmux", "-N", "-S", host_session.socket,
        "attach-session", "-E", "-r", "-t", "=shared",
    ]  # fmt: skip

    typed = f"echo GUEST-TYPED-{secrets.token_hex(3)}"
    observer.tmux.cmd("send-keys", "-t", pane, typed, "Enter")
    # Detaching is one of the few things a read-only client may do. The server handles
    # one client's keys in order, so once the guest is detached its typing was seen
    # (and dropped): the host's pane must not show it.
    observer.tmux.cmd("send-keys", "-t", pane, "C-b", "d")
    assert observer.exit_status(pane) == 0
    assert "[detached" in observer.tmux.capture(pane)
    assert typed not in host_session.tmux.capture("=shared:")


def test_read_write_guest_types_into_the_host_pane(
    accounts, host_session, observer, write_policy, journal, gatekeeper_bin
) -> None:
    host_session.tmux.cmd("server-access", "-aw", accounts.pairer.name)
    policy = write_policy(
        session_policy(
            host_session.socket, accounts.host.name, ro=accounts.guest.name, rw=accounts.pairer.name
        )
    )
    pane = observer.spawn(
        accounts.pairer, [str(gatekeeper_bin), "--policy", str(policy)], _env("attach shared")
    )
    observer.tmux.wait_screen(pane, host_session.marker)
    assert [flag for _, flag in clients(host_session)] == ["0"]

    typed = f"echo PAIR-{secrets.token_hex(3)}"
    observer.tmux.cmd("send-keys", "-t", pane, typed, "Enter")
    host_session.tmux.wait_screen("=shared:", typed.removeprefix("echo ") + "\n")
    assert journal.messages(f"GATEKEEPER_USER={accounts.pairer.name}")[-1]["mode"] == "read-write"


def test_watch_is_read_only_even_with_a_read_write_grant(
    accounts, host_session, observer, write_policy, gatekeeper_bin
) -> None:
    host_session.tmux.cmd("server-access", "-aw", accounts.pairer.name)
    policy = write_policy(
        session_policy(
            host_session.socket, accounts.host.name, ro=accounts.guest.name, rw=accounts.pairer.name
        )
    )
    pane = observer.spawn(
        accounts.pairer, [str(gatekeeper_bin), "--policy", str(policy)], _env("watch shared")
    )
    observer.tmux.wait_screen(pane, host_session.marker)
    assert [flag for _, flag in clients(host_session)] == ["1"]


def test_a_grant_for_main_never_attaches_to_mainframe(
    accounts, world_dir, observer, write_policy, journal, gatekeeper_bin
) -> None:
    host = start_host_session(
        accounts.host, world_dir / "tmux", grp.getgrnam(accounts.group).gr_gid, name="mainframe"
    )
    try:
        host.tmux.cmd("server-access", "-ar", accounts.guest.name)
        policy = write_policy(
            session_policy(
                host.socket, accounts.host.name, ro=accounts.guest.name, rw="nobody", target="main"
            )
        )
        pane = observer.spawn(
            accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], _env("attach shared")
        )
        status = observer.exit_status(pane)
        assert status != 0
        assert host.marker not in observer.tmux.capture(pane)
        assert host.tmux.out("list-clients") == ""
        record = journal.messages(f"GATEKEEPER_USER={accounts.guest.name}")[-1]
        assert record["argv"][-2:] == ["-t", "=main"]
    finally:
        host.tmux.kill()


def test_no_server_at_the_socket_is_reported_not_started(
    accounts, world_dir, observer, write_policy, journal, gatekeeper_bin
) -> None:
    """`tmux -N` and the probe: a guest never starts its own server at the host's path."""
    directory = world_dir / "tmux"
    directory.mkdir()
    os.chown(directory, accounts.host.uid, grp.getgrnam(accounts.group).gr_gid)
    directory.chmod(0o750)
    socket = str(directory / "sock")
    policy = write_policy(
        session_policy(socket, accounts.host.name, ro=accounts.guest.name, rw="nobody")
    )
    pane = observer.spawn(
        accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], _env("attach shared")
    )
    assert observer.exit_status(pane) == 69
    screen = observer.tmux.capture(pane)
    record = journal.messages(f"GATEKEEPER_USER={accounts.guest.name}")[-1]
    assert (
        f"session 'shared' is not running or not shared with you (ref {record['connection_id']})"
        in screen
    )
    assert record["reason"] == "socket_missing"
    assert not (directory / "sock").exists()


def test_a_socket_planted_by_a_group_member_is_refused(
    accounts, world_dir, observer, write_policy, journal, gatekeeper_bin
) -> None:
    """SECURITY.md §20: in a group-writable dir a member replaces the host's socket."""
    gid = grp.getgrnam(accounts.group).gr_gid
    directory = world_dir / "tmux"
    directory.mkdir()
    os.chown(directory, accounts.host.uid, gid)
    directory.chmod(0o1770)  # sticky: the member cannot remove the host's entry...
    socket = str(directory / "sock")
    attacker = gktest.Tmux(socket, accounts.member)  # ...but can create the path first
    attacker.cmd("-f", "/dev/null", "new-session", "-d", "-s", "shared", "sh")
    try:
        os.chmod(socket, 0o666)  # noqa: S103 - the attacker makes it world-connectable
        policy = write_policy(
            session_policy(socket, accounts.host.name, ro=accounts.guest.name, rw="nobody")
        )
        pane = observer.spawn(
            accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], _env("attach shared")
        )
        assert observer.exit_status(pane) == 1
        record = journal.messages(f"GATEKEEPER_USER={accounts.guest.name}")[-1]
        assert record["reason"] == "socket_owner_mismatch"
        assert attacker.out("list-clients") == ""
    finally:
        attacker.kill()


def _env(command: str) -> dict[str, str]:
    return guest_env(command)


def test_list_json_reports_the_live_session(
    accounts, host_session, write_policy, gatekeeper_bin
) -> None:
    host_session.tmux.cmd("server-access", "-ar", accounts.guest.name)
    policy = write_policy(
        session_policy(
            host_session.socket, accounts.host.name, ro=accounts.guest.name, rw=accounts.pairer.name
        )
    )
    result = gktest.run_as(
        accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], _env("list --json")
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == {
        "programs": [],
        "sessions": [
            {"default": True, "mode": "read-only", "name": "shared", "running": True, "viewers": 0}
        ],
    }
