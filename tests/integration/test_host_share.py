"""``gatekeeperctl share``/``who``/``kick`` on real tmux, real accounts and real journald.

The host runs gatekeeperctl as the host account. Guests run the installed
gatekeeper launcher as their own accounts on real ptys inside an observer
tmux server (root's, private); what they see is read with capture-pane on
the observer, what reaches the host with capture-pane on the host's server.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import secrets
import signal
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gktest
import pytest
from gkhost import Observer, guest_env

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.accounts,
    pytest.mark.journald,
    pytest.mark.usefixtures("gatekeeper_bin"),  # the installed launcher must exist
]

NOT_SHARED = "session 'shared' is not running or not shared with you"
DETACHED = "[detached (from session shared)]"
#: Generous: under a loaded CI machine a guest's gatekeeper + tmux can take seconds.
EXIT_TIMEOUT = 20


def policy_text(
    socket: str,
    owner: str,
    *,
    ro: str | None = None,
    rw: str | None = None,
    ro_expires: datetime | None = None,
    people: str = "",
) -> str:
    text = f"""
[tmux]
binary = "/usr/bin/tmux"
{people}
[sessions.shared]
socket = "{socket}"
owner = "{owner}"
target = "shared"
"""
    if ro:
        expires = f"expires = {ro_expires.strftime('%Y-%m-%dT%H:%M:%SZ')}\n" if ro_expires else ""
        text += f"""
[[grant]]
users = ["{ro}"]
session = "shared"
mode = "read-only"
default = true
{expires}"""
    if rw:
        text += f"""
[[grant]]
users = ["{rw}"]
session = "shared"
mode = "read-write"
"""
    return text


def host_env(account: gktest.Account) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": account.home, "LANG": "C.UTF-8", "TERM": "xterm"}


@dataclass
class Host:
    """The host account, its share directory and its (future) shared server."""

    account: gktest.Account
    directory: Path
    socket: str
    tmux: gktest.Tmux
    write_policy: Callable[[str], Path]

    def ctl(self, *args: str):
        argv = [str(gktest.GATEKEEPERCTL), *args]
        return gktest.run_as(self.account, argv, host_env(self.account), timeout=60)

    def share(self, policy: Path, *extra: str):
        result = self.ctl("share", "shared", "--policy", str(policy), *extra)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    def mark(self) -> str:
        """Print a fresh marker in the host's pane; return it once it is on screen."""
        marker = f"HOST-{secrets.token_hex(3)}"
        self.tmux.cmd("send-keys", "-t", "=shared:", f"echo {marker}", "Enter")
        self.tmux.wait_screen("=shared:", marker + "\n")
        return marker

    def option(self, name: str) -> str:
        result = self.tmux.cmd("show-options", "-gqv", name, check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else ""

    def acl(self) -> dict[str, str]:
        lines = self.tmux.out("server-access", "-l").splitlines()
        return {user: flag for user, _, flag in (line.rpartition(" ") for line in lines)}


@pytest.fixture
def host(accounts, world_dir: Path, write_policy, observer: Observer) -> Iterator[Host]:
    """What an admin does once (install -d -o HOST -g GROUP -m 2750), then cleanup."""
    gktest.require_tool("tmux", "setpriv")
    directory = world_dir / "tmux"
    directory.mkdir()
    os.chown(directory, accounts.host.uid, grp.getgrnam(accounts.group).gr_gid)
    directory.chmod(0o2750)
    socket = str(directory / "sock")
    made = Host(accounts.host, directory, socket, gktest.Tmux(socket, accounts.host), write_policy)
    try:
        yield made
    finally:
        # Stop the host's server, its watcher and the observer together: each tmux
        # server takes a moment to exit, and waiting for them one by one adds up.
        pids = [pid for pid in (made.tmux.pid(), observer.tmux.pid()) if pid is not None]
        if (watcher := made.option("@gatekeeper-watcher")).isdigit():
            pids.append(int(watcher))
        made.tmux.cmd("kill-server", check=False)
        observer.tmux.cmd("kill-server", check=False)
        try:
            gktest.wait_until(
                lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids),
                10,
                "the host's server, its watcher and the observer to exit",
            )
        finally:
            for pid in pids:
                gktest.kill_pid(pid)
            Path(socket).unlink(missing_ok=True)


def attach(observer: Observer, account: gktest.Account, policy: Path, command: str, **env: str):
    return observer.spawn(
        account, [str(gktest.GATEKEEPER), "--policy", str(policy)], guest_env(command, **env)
    )


def connect_record(journal: gktest.Journal, pid: int) -> dict[str, Any]:
    """The gatekeeper's record for the process that became tmux client ``pid``."""

    def find() -> dict[str, Any] | None:
        for record in journal.messages("GATEKEEPER_EVENT=connect"):
            if record.get("pid") == pid:
                return record
        return None

    return gktest.wait_until(find, 10, f"the connect record of pid {pid}")


def denial(journal: gktest.Journal, user: str, reason: str) -> dict[str, Any]:
    """The newest connect record of ``user`` denied for ``reason`` (journald is async)."""
    return gktest.wait_until(
        lambda: next(
            (
                r
                for r in reversed(journal.messages(f"GATEKEEPER_USER={user}"))
                if r.get("reason") == reason
            ),
            None,
        ),
        10,
        f"a {reason} record for {user}",
    )


def client_pid(host: Host, user: str) -> int:
    """The pid of ``user``'s tmux client on the host's server (= the gatekeeper's pid)."""
    return int(
        gktest.wait_until(
            lambda: next((pid for u, _, pid in guest_clients(host) if u == user), None),
            10,
            f"a client of {user}",
        )
    )


def event_for(journal: gktest.Journal, event: str, pid: int, timeout: float = 15) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for record in journal.messages(f"GATEKEEPER_EVENT={event}"):
            if record.get("client_pid") == pid:
                return record
        return None

    return gktest.wait_until(find, timeout, f"a {event} record for client {pid}")


def guest_clients(host: Host) -> list[tuple[str, str, str]]:
    out = host.tmux.out("list-clients", "-F", "#{client_user} #{client_readonly} #{client_pid}")
    rows = [line.split(" ") for line in out.splitlines()]
    return [(user, readonly, pid) for user, readonly, pid in rows]


# --------------------------------------------------------------------------- tests


def test_without_share_the_guest_is_told_why_and_exit_is_not_zero(
    accounts, host_session, observer, write_policy, journal
) -> None:
    """tmux >= 3.3 prints 'access not allowed' and exits 0; the gatekeeper asks first."""
    policy = write_policy(
        policy_text(host_session.socket, accounts.host.name, ro=accounts.guest.name)
    )
    pane = attach(observer, accounts.guest, policy, "attach shared")
    assert observer.exit_status(pane, timeout=EXIT_TIMEOUT) == 69
    record = denial(journal, accounts.guest.name, "session_not_shared")
    screen = observer.tmux.capture(pane)
    assert f"{NOT_SHARED} (ref {record['connection_id']})" in screen
    assert "access not allowed" not in screen
    assert host_session.marker not in screen


def test_share_sets_up_a_safe_server_and_a_read_only_guest_cannot_type(
    accounts, host, observer, journal
) -> None:
    policy = host.write_policy(
        policy_text(
            host.socket, accounts.host.name, ro=accounts.guest.name, rw=accounts.pairer.name
        )
    )
    out = host.share(policy)
    assert f"guest: {accounts.guest.name} (read-only)" in out
    assert f"guest: {accounts.pairer.name} (read-write)" in out
    st = os.lstat(host.socket)
    assert stat.S_IMODE(st.st_mode) & 0o666 == 0o660
    assert st.st_gid == grp.getgrnam(accounts.group).gr_gid
    assert host.acl() == {accounts.host.name: "(W)", accounts.guest.name: "(R)",
                          accounts.pairer.name: "(W)"}  # fmt: skip
    assert host.tmux.out("show-options", "-g", "update-environment").strip() == (
        "update-environment"
    )
    marker = host.mark()

    pane = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(pane, marker)
    record = connect_record(journal, client_pid(host, accounts.guest.name))
    assert record["user"] == accounts.guest.name
    assert guest_clients(host) == [(accounts.guest.name, "1", str(record["pid"]))]

    typed = f"echo GUEST-TYPED-{secrets.token_hex(3)}"
    observer.tmux.cmd("send-keys", "-t", pane, typed, "Enter")
    after = host.mark()  # the guest's screen follows the host past the typed keys
    observer.tmux.wait_screen(pane, after)
    assert typed not in host.tmux.capture("=shared:")

    join = event_for(journal, "join", record["pid"])
    assert join["user"] == accounts.guest.name
    assert join["mode"] == "read-only"
    assert join["session"] == "shared"
    observer.tmux.cmd("send-keys", "-t", pane, "C-b", "d")
    assert observer.exit_status(pane, timeout=EXIT_TIMEOUT) == 0
    leave = event_for(journal, "leave", record["pid"])
    assert leave["ended"] == "detached"
    assert 0 < leave["duration_seconds"] < 120
    assert leave["message_id"] == "0105c4a3bfd64c8abb0de688f16b59d2"


def test_a_read_only_guest_cannot_leave_the_session_with_default_keys(
    accounts, host, observer
) -> None:
    policy = host.write_policy(policy_text(host.socket, accounts.host.name, ro=accounts.guest.name))
    host.share(policy)
    host.mark()
    secret = f"OTHER-SESSION-{secrets.token_hex(3)}"
    for name in ("aaa", "zzz"):  # before and after 'shared': ( and ) both have a target
        host.tmux.cmd("new-session", "-d", "-s", name, "sh")
        host.tmux.cmd("send-keys", "-t", f"={name}:", f"echo {secret}", "Enter")
        host.tmux.wait_screen(f"={name}:", secret + "\n")
    pane = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(pane, "HOST-")

    for key in (")", "(", "L", "s", "w"):
        observer.tmux.cmd("send-keys", "-t", pane, "C-b", key)
        if key in "sw":
            observer.tmux.cmd("send-keys", "-t", pane, "Enter")
    # Keys are handled in order: the detach message names the session it left.
    observer.tmux.cmd("send-keys", "-t", pane, "C-b", "d")
    assert observer.exit_status(pane, timeout=EXIT_TIMEOUT) == 0
    screen = observer.tmux.capture(pane)
    assert DETACHED in screen
    assert secret not in screen

    # The host keeps the keys (the guard only refuses read-only clients).
    own = observer.spawn(
        accounts.host,
        ["tmux", "-S", host.socket, "attach", "-t", "=shared"],
        host_env(accounts.host),
    )
    observer.tmux.wait_screen(own, "HOST-")
    observer.tmux.cmd("send-keys", "-t", own, "C-b", ")")
    observer.tmux.wait_screen(own, secret)
    observer.tmux.cmd("send-keys", "-t", own, "C-b", "d")
    observer.exit_status(own, timeout=EXIT_TIMEOUT)


def test_a_read_write_guest_types_into_the_host_pane(accounts, host, observer, journal) -> None:
    policy = host.write_policy(
        policy_text(host.socket, accounts.host.name, rw=accounts.pairer.name)
    )
    host.share(policy)
    marker = host.mark()
    pane = attach(observer, accounts.pairer, policy, "attach shared")
    observer.tmux.wait_screen(pane, marker)
    # The host joins with `share --attach` (a re-run: nothing changes, then attach).
    argv = [str(gktest.GATEKEEPERCTL), "share", "shared", "--attach", "--policy", str(policy)]
    own = observer.spawn(accounts.host, argv, host_env(accounts.host))
    observer.tmux.wait_screen(own, marker)
    typed = f"PAIR-{secrets.token_hex(3)}"
    observer.tmux.cmd("send-keys", "-t", pane, f"echo {typed}", "Enter")
    host.tmux.wait_screen("=shared:", typed + "\n")
    observer.tmux.wait_screen(own, typed + "\n")
    assert sorted(user for user, _, _ in guest_clients(host)) == sorted(
        [accounts.host.name, accounts.pairer.name]
    )
    record = connect_record(journal, client_pid(host, accounts.pairer.name))
    assert event_for(journal, "join", record["pid"])["mode"] == "read-write"


def test_a_group_member_cannot_replace_the_shared_socket(accounts, host, observer, journal) -> None:
    policy = host.write_policy(policy_text(host.socket, accounts.host.name, ro=accounts.guest.name))
    host.share(policy)
    marker = host.mark()
    before = os.lstat(host.socket)

    # Replacing the socket means removing it and binding a new one: the 2750
    # directory lets the member do neither.
    env = host_env(accounts.member)
    removed = gktest.run_as(accounts.member, ["rm", "-f", host.socket], env)
    assert removed.returncode != 0
    assert b"Permission denied" in removed.stderr
    other = gktest.Tmux(str(host.directory / "sock2"), accounts.member)
    started = other.cmd("-f", "/dev/null", "new-session", "-d", "-s", "shared", "sh", check=False)
    assert b"Permission denied" in started.stderr
    assert not (host.directory / "sock2").exists()
    after = os.lstat(host.socket)
    assert (after.st_ino, after.st_uid) == (before.st_ino, accounts.host.uid)
    # Connecting works (group 0660) but the host's server does not let the member in.
    peek = gktest.Tmux(host.socket, accounts.member).cmd("-N", "list-clients", check=False)
    assert b"access not allowed" in peek.stderr

    # A socket the member does own at the path is refused by the gatekeeper.
    planted_dir = host.directory.parent / "planted"
    planted_dir.mkdir()
    os.chown(planted_dir, accounts.host.uid, grp.getgrnam(accounts.group).gr_gid)
    planted_dir.chmod(0o1770)
    planted = gktest.Tmux(str(planted_dir / "sock"), accounts.member)
    planted.cmd("-f", "/dev/null", "new-session", "-d", "-s", "shared", "sh")
    try:
        os.chmod(planted.socket, 0o666)  # noqa: S103 - the attacker's socket, open to all
        bad = host.write_policy(
            policy_text(planted.socket, accounts.host.name, ro=accounts.guest.name)
        )
        pane = attach(observer, accounts.guest, bad, "attach shared")
        assert observer.exit_status(pane, timeout=EXIT_TIMEOUT) == 1
        denial(journal, accounts.guest.name, "socket_owner_mismatch")
        assert planted.out("list-clients") == ""
    finally:
        planted.kill()
    pane = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(pane, marker)


def test_share_refuses_an_unsafe_directory_with_the_fix(accounts, world_dir, write_policy) -> None:
    directory = world_dir / "loose"
    directory.mkdir()
    os.chown(directory, 0, grp.getgrnam(accounts.group).gr_gid)
    directory.chmod(0o770)  # group-writable, not sticky: a member can replace the socket
    policy = write_policy(
        policy_text(str(directory / "sock"), accounts.host.name, ro=accounts.guest.name)
    )
    result = gktest.run_as(
        accounts.host,
        [str(gktest.GATEKEEPERCTL), "share", "shared", "--policy", str(policy)],
        host_env(accounts.host),
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "writable by others or by the group without the sticky bit" in err
    assert f"fix: sudo install -d -o {accounts.host.name} -g {accounts.group}" in err
    assert not (directory / "sock").exists()


def test_share_is_idempotent_and_removes_grants_the_policy_no_longer_gives(
    accounts, host, journal
) -> None:
    both = host.write_policy(
        policy_text(
            host.socket, accounts.host.name, ro=accounts.guest.name, rw=accounts.pairer.name
        )
    )
    first = host.share(both)
    assert "changed: started a tmux server" in first
    assert "no changes" in host.share(both)

    host.tmux.cmd("server-access", "-aw", accounts.outsider.name)  # a grant by hand
    only_guest = host.write_policy(
        policy_text(host.socket, accounts.host.name, ro=accounts.guest.name)
    )
    third = host.share(only_guest)
    assert f"removed {accounts.pairer.name}" in third
    assert f"removed {accounts.outsider.name}" in third
    assert host.acl() == {accounts.host.name: "(W)", accounts.guest.name: "(R)"}
    records = journal.wait_for("GATEKEEPER_EVENT=share", f"GATEKEEPER_USER={accounts.host.name}")
    assert any(
        f"removed {accounts.pairer.name}" in change
        for record in records
        for change in json.loads(record["MESSAGE"])["changes"]
    )


def test_sigusr1_socket_recreation_is_repaired(accounts, host, observer) -> None:
    policy = host.write_policy(policy_text(host.socket, accounts.host.name, ro=accounts.guest.name))
    host.share(policy)
    marker = host.mark()
    pid = host.tmux.pid()
    assert pid is not None
    inode = os.lstat(host.socket).st_ino
    os.kill(pid, signal.SIGUSR1)
    gktest.wait_until(
        lambda: (
            os.lstat(host.socket).st_ino != inode
            and stat.S_IMODE(os.lstat(host.socket).st_mode) & 0o060 == 0o060
        ),
        10,
        "the watcher to restore the socket's group bits",
    )
    pane = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(pane, marker)


def test_who_lists_guests_with_mode_person_and_tty(
    accounts, host, observer, journal, world_dir
) -> None:
    blob = base64.b64encode(b"\0\0\0\x0bssh-ed25519" + secrets.token_bytes(32)).decode()
    fingerprint = "SHA256:" + base64.b64encode(
        __import__("hashlib").sha256(base64.b64decode(blob)).digest()
    ).decode().rstrip("=")
    people = f'[people.ann]\nkeys = ["{fingerprint}"]\n'
    policy = host.write_policy(
        policy_text(
            host.socket,
            accounts.host.name,
            ro=accounts.guest.name,
            rw=accounts.pairer.name,
            people=people,
        )
    )
    host.share(policy)
    marker = host.mark()
    auth = world_dir / "auth-info"
    auth.write_text(f"publickey ssh-ed25519 {blob}\n")
    os.chown(auth, accounts.guest.uid, accounts.guest.gid)
    ro = attach(observer, accounts.guest, policy, "attach shared", SSH_USER_AUTH=str(auth))
    rw = attach(observer, accounts.pairer, policy, "attach shared")
    observer.tmux.wait_screen(ro, marker)
    observer.tmux.wait_screen(rw, marker)

    result = host.ctl("who", "shared", "--json", "--policy", str(policy))
    assert result.returncode == 0, result.stderr
    rows = {row["user"]: row for row in json.loads(result.stdout)}
    assert rows[accounts.guest.name]["mode"] == "read-only"
    assert rows[accounts.guest.name]["read_only"] is True
    assert rows[accounts.pairer.name]["mode"] == "read-write"
    guest_pid = client_pid(host, accounts.guest.name)
    assert connect_record(journal, guest_pid)["user"] == accounts.guest.name
    assert rows[accounts.guest.name]["client_pid"] == guest_pid
    assert rows[accounts.guest.name]["tty"].startswith("/dev/pts/")
    since = datetime.fromisoformat(rows[accounts.guest.name]["since"])
    assert abs((datetime.now(UTC) - since).total_seconds()) < 120

    # Root may read the journal: the person comes from the gatekeeper's connect record.
    as_root = gktest.run_as(
        None, [str(gktest.GATEKEEPERCTL), "who", "shared", "--json", "--policy", str(policy)],
        host_env(accounts.host),
    )  # fmt: skip
    rooted = {row["user"]: row for row in json.loads(as_root.stdout)}
    assert rooted[accounts.guest.name]["person"] == "ann"
    assert rooted[accounts.pairer.name]["person"] is None

    table = host.ctl("who", "--policy", str(policy))
    text = table.stdout.decode()
    words = next(x.split() for x in text.splitlines() if accounts.guest.name in x)
    assert words[:2] == ["shared", accounts.guest.name]
    assert "read-only" in words
    assert str(guest_pid) in words
    # The host may not read the journal: PERSON is '-', and who says why and the fix.
    assert words[2] == "-"
    notes = table.stderr.decode().splitlines()
    assert len(notes) == 1, notes
    assert "PERSON shows '-'" in notes[0]
    assert "systemd-journal group" in notes[0]
    # CONTROL: root reads the journal, sees the person, and gets no note.
    rooted_table = gktest.run_as(
        None, [str(gktest.GATEKEEPERCTL), "who", "--policy", str(policy)], host_env(accounts.host)
    )
    assert rooted_table.stderr == b"", rooted_table.stderr
    assert "ann" in rooted_table.stdout.decode()


def test_kick_disconnects_the_guest_and_blocks_reattach_until_share(
    accounts, host, observer, journal
) -> None:
    policy = host.write_policy(policy_text(host.socket, accounts.host.name, ro=accounts.guest.name))
    host.share(policy)
    marker = host.mark()
    pane = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(pane, marker)
    pid = client_pid(host, accounts.guest.name)

    result = host.ctl("kick", "shared", accounts.guest.name, "--policy", str(policy))
    assert result.returncode == 0, result.stderr
    assert b"1 client(s) detached" in result.stdout
    observer.exit_status(pane, timeout=EXIT_TIMEOUT)
    assert guest_clients(host) == []
    assert accounts.guest.name not in host.acl()
    leave = event_for(journal, "leave", pid)
    assert leave["ended"] == "kicked"
    assert event_for(journal, "join", pid)["user"] == accounts.guest.name
    kick = event_for(journal, "kick", pid)
    assert kick["by"] == accounts.host.name
    assert kick["user"] == accounts.guest.name

    again = attach(observer, accounts.guest, policy, "attach shared")
    assert observer.exit_status(again, timeout=EXIT_TIMEOUT) == 69
    assert NOT_SHARED in observer.tmux.capture(again)

    host.share(policy)
    back = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(back, marker)


def test_an_expiring_grant_detaches_the_attached_guest_on_time(
    accounts, host, observer, journal
) -> None:
    expires = (datetime.now(UTC) + timedelta(seconds=12)).replace(microsecond=0)
    policy = host.write_policy(
        policy_text(host.socket, accounts.host.name, ro=accounts.guest.name, ro_expires=expires)
    )
    host.share(policy)
    marker = host.mark()
    pane = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(pane, marker)
    pid = client_pid(host, accounts.guest.name)

    observer.exit_status(pane, timeout=20)
    gone = datetime.now(UTC)
    assert gone >= expires
    assert (gone - expires).total_seconds() < 5
    assert accounts.guest.name not in host.acl()
    leave = event_for(journal, "leave", pid)
    assert leave["ended"] == "expired"
    assert leave["duration_seconds"] > 0
    revoke = journal.wait_for("GATEKEEPER_EVENT=revoke", f"GATEKEEPER_USER={accounts.guest.name}")
    assert json.loads(revoke[-1]["MESSAGE"])["reason"] == "expired"


def test_upgrading_a_guest_keeps_their_attached_read_only_client_read_only(
    accounts, host, observer
) -> None:
    """`server-access -w` would make every attached client of that user writable."""
    read_only = host.write_policy(
        policy_text(host.socket, accounts.host.name, ro=accounts.guest.name)
    )
    host.share(read_only)
    marker = host.mark()
    pane = attach(observer, accounts.guest, read_only, "attach shared")
    observer.tmux.wait_screen(pane, marker)
    pid = client_pid(host, accounts.guest.name)

    read_write = host.write_policy(
        policy_text(host.socket, accounts.host.name, rw=accounts.guest.name)
    )
    assert f"changed {accounts.guest.name} to read-write" in host.share(read_write)
    assert host.acl()[accounts.guest.name] == "(W)"
    assert guest_clients(host) == [(accounts.guest.name, "1", str(pid))]
    typed = f"echo STILL-READ-ONLY-{secrets.token_hex(3)}"
    observer.tmux.cmd("send-keys", "-t", pane, typed, "Enter")
    observer.tmux.wait_screen(pane, host.mark())
    assert typed not in host.tmux.capture("=shared:")


def test_guests_attached_when_the_server_exits_get_a_leave_record(
    accounts, host, observer, journal
) -> None:
    policy = host.write_policy(policy_text(host.socket, accounts.host.name, ro=accounts.guest.name))
    host.share(policy)
    marker = host.mark()
    pane = attach(observer, accounts.guest, policy, "attach shared")
    observer.tmux.wait_screen(pane, marker)
    pid = client_pid(host, accounts.guest.name)
    event_for(journal, "join", pid)
    gktest.wait_until(
        lambda: str(pid) in host.option("@gatekeeper-watching").split(),
        10,
        "the watcher to see the guest",
    )
    watcher = int(host.option("@gatekeeper-watcher"))
    host.tmux.cmd("kill-server")
    observer.exit_status(pane, timeout=EXIT_TIMEOUT)
    leave = event_for(journal, "leave", pid)
    assert leave["ended"] == "server-exit"
    assert leave["duration_seconds"] > 0
    # The watcher goes with its server: nothing is left running.
    gktest.wait_until(lambda: not Path(f"/proc/{watcher}").exists(), 10, "the watcher to exit")
