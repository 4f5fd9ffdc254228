"""Session recording and the host's join notice, on real tmux, accounts and journald.

The host runs ``gatekeeperctl share`` with ``record`` set; guests attach
through the installed gatekeeper on real ptys (observer tmux). The recordings
are read back as asciicast v2 files; the failure test breaks the directory
while a guest watches.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
from pathlib import Path

import gktest
import pytest
from gkhost import Observer
from test_host_share import (  # the share tier's harness: one host, one observer
    EXIT_TIMEOUT,
    NOT_SHARED,
    Host,
    attach,
    client_pid,
    connect_record,
    denial,
    event_for,
    host,  # noqa: F401 - the fixture, requested by name below
    policy_text,
)

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.accounts,
    pytest.mark.journald,
    pytest.mark.usefixtures("gatekeeper_bin"),
]


NOTICE = "gatekeeper: session 'shared' is recorded: everything shown in it is kept with timing."


def recorded_policy(
    host: Host,  # noqa: F811 - not the fixture: the value it gave
    accounts,
    record: str,
    *,
    announce: bool = True,
) -> tuple[Path, Path]:
    recordings = host.directory / "rec"
    text = policy_text(host.socket, accounts.host.name, ro=accounts.guest.name)
    extra = (
        f'record = "{record}"\nrecordings = "{recordings}"\nannounce = {str(announce).lower()}\n'
    )
    text = text.replace('target = "shared"\n', 'target = "shared"\n' + extra, 1)
    return host.write_policy(text), recordings


def host_env_of(accounts) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": accounts.host.home, "LANG": "C.UTF-8", "TERM": "xterm"}


def events(path: Path) -> tuple[dict, list[list]]:
    lines = path.read_text().splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def output(path: Path) -> str:
    return "".join(e[2] for e in events(path)[1] if e[1] == "o")


def wait_in_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    gktest.wait_until(lambda: path.exists() and text in output(path), 15, f"{text} in {name}")
    return path


def test_required_recording_covers_the_visit_every_pane_and_the_host_sees_the_join(
    accounts,
    host,  # noqa: F811 - the fixture
    observer: Observer,
    journal,
) -> None:
    gktest.require_tool("asciinema")
    policy, recordings = recorded_policy(host, accounts, "required")
    out = host.share(policy)
    assert f"recording every pane to {recordings} (required)" in out
    st = os.lstat(recordings)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (accounts.host.uid, 0o700)
    # The guest cannot list or read the recordings.
    listing = gktest.run_as(accounts.guest, ["/bin/ls", str(recordings)], {"PATH": "/usr/bin:/bin"})
    assert listing.returncode != 0
    assert b"Permission denied" in listing.stderr

    # The host's own client, on a pty of the observer: it shows the join notice.
    host_pane = observer.spawn(
        accounts.host, ["/usr/bin/tmux", "-S", host.socket, "attach", "-t", "=shared"],
        {"PATH": "/usr/bin:/bin", "TERM": "xterm", "HOME": accounts.host.home},
    )  # fmt: skip
    gktest.wait_until(lambda: len(host.tmux.out("list-clients").splitlines()) == 1, 10, "host")

    pane = attach(observer, accounts.guest, policy, "attach shared")
    pid = client_pid(host, accounts.guest.name)
    join = event_for(journal, "join", pid)
    files = join["recordings"]
    assert len(files) == 1
    assert files[0].endswith("_000.cast")
    # Printed before exec; tmux then switches to the alternate screen, so the line
    # is on the terminal's normal screen (what the guest sees again on detach).
    gktest.wait_until(
        lambda: NOTICE in observer.tmux.out("capture-pane", "-p", "-a", "-t", pane), 10, "notice"
    )
    # The host cannot read the test's journald namespace, so no address is added:
    # the address comes only from a connect record the host can read and verify.
    notice = f"gatekeeper: {accounts.guest.name} joined read-only"
    observer.tmux.wait_screen(host_pane, notice)
    assert notice not in observer.tmux.capture(pane)

    marker = host.mark()
    observer.tmux.wait_screen(pane, marker)
    path = wait_in_file(recordings, files[0], marker)
    header, evs = events(path)
    assert header["version"] == 2
    assert header["width"] > 0
    assert header["height"] > 0
    assert evs[0][1:] == ["m", f"join {accounts.guest.name} read-only"]
    times = [e[0] for e in evs]
    assert times == sorted(times)

    # Debian's asciinema plays the file and finds what the host typed.
    # (its config dir must be writable: the test accounts' homes are root's)
    env = host_env_of(accounts) | {"ASCIINEMA_CONFIG_HOME": str(host.directory / "asciinema")}
    # It wants a terminal (/dev/tty): run it on a pty of the observer.
    cat = observer.spawn(accounts.host, ["/usr/bin/asciinema", "cat", str(path)], env)
    assert observer.exit_status(cat) == 0
    assert marker in observer.tmux.capture(cat)
    # Our replay reproduces the screen: play it in a fresh pane and read that pane.
    replayed = observer.spawn(
        accounts.host,
        [str(gktest.GATEKEEPERCTL), "replay", "--speed", "50", "--idle-limit", "0.1", str(path)],
        host_env_of(accounts),
    )
    assert observer.exit_status(replayed) == 0
    assert marker in observer.tmux.capture(replayed)

    # A pane created mid-visit is recorded too, from its first output on.
    new_pane = host.tmux.out("split-window", "-P", "-F", "#{pane_id}", "-t", "=shared:").strip()
    second = f"SECOND-{secrets.token_hex(3)}"
    host.tmux.cmd("send-keys", "-t", new_pane, f"echo {second}", "Enter")
    gktest.wait_until(
        lambda: any(second in output(p) for p in recordings.glob(f"*_p{new_pane[1:]}_000.cast")),
        15,
        "the new pane's recording",
    )

    observer.tmux.cmd("kill-window", "-t", pane)
    leave = event_for(journal, "leave", pid)
    assert files[0] in leave["recordings"]
    assert any(f"_p{new_pane[1:]}_" in name for name in leave["recordings"])
    observer.tmux.wait_screen(host_pane, f"gatekeeper: {accounts.guest.name} left")

    # The review list: as root it reads the audit trail and names the visit.
    listed = gktest.run_as(
        None, [str(gktest.GATEKEEPERCTL), "recordings", "--policy", str(policy), "--json"],
        host_env_of(accounts),
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in map(json.loads, listed.stdout.decode().splitlines())}
    first = rows[files[0].removesuffix("_000.cast")]
    assert first["marker"] == f"join {accounts.guest.name} read-only"
    assert [v["user"] for v in first["visits"]] == [accounts.guest.name]
    assert connect_record(journal, pid)["session"] == "shared"


@pytest.mark.parametrize("record", ["required", "on"])
def test_a_broken_recordings_directory_detaches_the_guest_only_when_required(
    accounts,
    host,  # noqa: F811 - the fixture
    observer: Observer,
    journal,
    record: str,
) -> None:
    policy, recordings = recorded_policy(host, accounts, record, announce=False)
    host.share(policy)
    pane = attach(observer, accounts.guest, policy, "attach shared")
    pid = client_pid(host, accounts.guest.name)
    event_for(journal, "join", pid)
    observer.tmux.wait_screen(pane, host.mark())

    seen = {
        kind: len(journal.messages(f"GATEKEEPER_EVENT={kind}")) for kind in ("record", "revoke")
    }

    def new(kind: str) -> dict | None:
        found = journal.messages(f"GATEKEEPER_EVENT={kind}")
        return found[-1] if len(found) > seen[kind] else None

    # Break the directory while the guest watches; the next file cannot be created.
    recordings.chmod(0o500)
    host.tmux.cmd("split-window", "-t", "=shared:")
    failure = gktest.wait_until(lambda: new("record"), 15, "a record event")
    assert failure["reason"] == "recording_failed"
    assert "Permission denied" in failure["detail"]
    if record == "on":
        # CONTROL: best-effort recording keeps the guest; only the audit record tells.
        observer.tmux.wait_screen(pane, host.mark())
        assert client_pid(host, accounts.guest.name) == pid
        return
    observer.exit_status(pane, timeout=EXIT_TIMEOUT)  # the guest's tmux ended: detached
    leave = event_for(journal, "leave", pid)
    assert leave["ended"] == "recording-failed"
    revoke = gktest.wait_until(lambda: new("revoke"), 15, "a revoke record")
    assert revoke["reason"] == "recording_failed"
    assert revoke["user"] == accounts.guest.name
    # The next guest is refused before attach, by the gatekeeper's own pre-flight.
    again = attach(observer, accounts.guest, policy, "attach shared")
    assert observer.exit_status(again, timeout=EXIT_TIMEOUT) == 69
    denial(journal, accounts.guest.name, "session_not_shared")
    assert NOT_SHARED in observer.tmux.capture(again)


def test_a_killed_recorder_detaches_the_guest_of_a_required_session(
    accounts,
    host,  # noqa: F811 - the fixture
    observer: Observer,
    journal,
) -> None:
    """SIGKILL leaves no chance to report: the watcher sees the pane's pipe gone."""
    policy, _recordings = recorded_policy(host, accounts, "required", announce=False)
    host.share(policy)
    pane = attach(observer, accounts.guest, policy, "attach shared")
    pid = client_pid(host, accounts.guest.name)
    event_for(journal, "join", pid)
    observer.tmux.wait_screen(pane, host.mark())

    def recorders() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"gatekeeper.host.recorder" in argv and host.socket.encode() in argv:
                found.append(int(entry.name))
        return found

    victims = gktest.wait_until(recorders, 10, "the recorder processes")
    for victim in victims:
        os.kill(victim, signal.SIGKILL)
    # tmux notices a dead pipe on its next write to it: the host keeps working.
    host.tmux.cmd("send-keys", "-t", "=shared:", "echo after-the-kill", "Enter")
    observer.exit_status(pane, timeout=EXIT_TIMEOUT)  # detached by the watcher
    leave = event_for(journal, "leave", pid)
    assert leave["ended"] == "recording-failed"
    assert accounts.guest.name not in host.acl()
