"""A contained program, for real: python3 as "the program with an embedded interpreter".

vim.nox's ``:perl`` is arbitrary code in the editor's process (SECURITY.md §34);
a contained ``python3 -c ATTACK`` is the same thing, honestly: the attack runs
with the program's own uid, inside the containment the gatekeeper applied. Each
attack has a CONTROL: the same script, as the same guest account, without the
gatekeeper, succeeds - so each assertion can fail.

The attack ends in the host's account: ``tmux -S SOCK -C attach`` and
``run-shell`` write a file owned by the host (control mode ignores read-only,
§27). Contained, the script cannot create a socket, spawn, or exec anything.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import gktest
import pytest
from gkhost import guest_env

pytestmark = [pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

PYTHON = "/usr/bin/python3"

ATTACK = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys
    wdir, drop, tmux_sock, port, outside, journal, other_pty = sys.argv[1:8]
    results = {}
    def save():
        with open(os.path.join(wdir, "results.json"), "w") as f:
            json.dump(results, f)
    def probe(name, fn):
        try:
            results[name] = "ok:" + str(fn())
        except OSError as e:
            results[name] = "denied:" + (e.__class__.__name__)
        save()
    fds = []
    for n in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink("/proc/self/fd/" + n) if int(n) > 2 else "")
        except OSError:
            pass  # the directory listing's own descriptor, closed by now
    results["extra_fds"] = [t for t in fds if t]
    save()
    probe("write_inside", lambda: open(os.path.join(wdir, "mine"), "w").write("x"))
    def read_other_pty():
        fd = os.open(other_pty, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        return os.read(fd, 100).decode().strip()
    probe("read_other_pty", read_other_pty)
    probe("write_outside", lambda: open(outside, "w").write("x"))
    probe("unix_socket", lambda: socket.socket(socket.AF_UNIX).connect(tmux_sock))
    def dgram_to_path():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        return a.sendto(b"x", journal)
    probe("socketpair_sendto", dgram_to_path)
    probe("tcp_connect", lambda: socket.create_connection(("127.0.0.1", int(port)), 5).close())
    probe("fork", lambda: os.waitpid(pid, 0) if (pid := os.fork()) else os._exit(0))
    probe("memfd", lambda: os.memfd_create("x"))
    def sysv_ipc():
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        made = libc.shmget(0, 4096, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
        if made < 0:
            raise OSError(ctypes.get_errno(), "shmget")
        libc.shmctl(made, 0, None)  # IPC_RMID: the control leaves nothing behind
        return "made"
    probe("sysv_ipc", sysv_ipc)
    def thread():
        import threading
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
    probe("thread", thread)
    def control_mode():
        cmd = 'run-shell "id -u > ' + drop + '/pwned"' + chr(10)
        r = subprocess.run(["/usr/bin/tmux", "-S", tmux_sock, "-C", "attach", "-t", "=shared"],
                           input=cmd.encode(), capture_output=True, timeout=10)
        return r.returncode
    probe("control_mode", control_mode)
    script = os.path.join(wdir, "x.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh" + chr(10) + "echo ran > " + drop + "/script_ran" + chr(10))
    os.chmod(script, 0o755)
    probe("exec_own_script", lambda: os.execv(script, [script]))
    probe("exec_sh", lambda: os.execv("/bin/sh", ["sh", "-c", "echo ran > " + drop + "/sh_ran"]))
    results["done"] = True
    save()
    """
)


class World:
    def __init__(self, root: Path, guest: gktest.Account) -> None:
        self.wdir = root / "w"
        self.wdir.mkdir()
        os.chown(self.wdir, guest.uid, guest.gid)
        self.drop = root / "drop"
        self.drop.mkdir()
        self.drop.chmod(0o1777)
        self.outside = self.drop / "outside"
        self.listener = socket.create_server(("127.0.0.1", 0))
        # A datagram socket anyone may write, like journald's.
        self.sink = root / "sink.sock"
        self.receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.receiver.bind(str(self.sink))
        # Another login of the same guest: sshd makes its pty the guest's, 0620.
        self.pty_master, self.pty_slave = os.openpty()
        self.pty = os.ttyname(self.pty_slave)
        os.chown(self.pty, guest.uid, os.stat(self.pty).st_gid)
        os.chmod(self.pty, 0o620)
        self.type_on_other_pty()

    def type_on_other_pty(self) -> None:
        os.write(self.pty_master, b"other-login-secret\n")
        self.sink.chmod(0o666)
        self.port = self.listener.getsockname()[1]

    def args(self, tmux_socket: str) -> list[str]:
        return [
            str(self.wdir),
            str(self.drop),
            tmux_socket,
            str(self.port),
            str(self.outside),
            str(self.sink),
            self.pty,
        ]

    def results(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.wdir / "results.json").read_text())
        return loaded

    def reset(self) -> None:
        for path in (*self.wdir.iterdir(), *self.drop.iterdir()):
            path.unlink()
        self.type_on_other_pty()


@pytest.fixture
def world(world_dir: Path, accounts) -> Iterator[World]:
    made = World(world_dir, accounts.guest)
    yield made
    made.listener.close()
    made.receiver.close()
    os.close(made.pty_master)
    os.close(made.pty_slave)


def test_contained_python_cannot_escape_but_the_same_attack_uncontained_owns_the_host(
    accounts, host_session, observer, write_policy, journal, gatekeeper_bin, world
) -> None:
    host_session.tmux.cmd("server-access", "-ar", accounts.guest.name)
    argv = [PYTHON, "-I", "-c", ATTACK, *world.args(host_session.socket)]

    # CONTROL: the guest's uid running the same code without containment.
    control = gktest.run_as(accounts.guest, argv, {"PATH": "/usr/bin:/bin", "HOME": "/"})
    assert control.returncode == 0, control.stderr
    results = world.results()
    assert results["unix_socket"] == "ok:None"
    assert results["tcp_connect"] == "ok:None"
    assert results["socketpair_sendto"] == "ok:1"
    assert results["write_outside"] == "ok:1"
    assert results["read_other_pty"] == "ok:other-login-secret"  # another login's keys
    assert results["sysv_ipc"] == "ok:made"
    assert results["control_mode"] == "ok:0"
    pwned = world.drop / "pwned"
    gktest.wait_until(lambda: pwned.exists() and pwned.read_text().strip(), 10, "run-shell")
    assert (world.drop / "pwned").stat().st_uid == accounts.host.uid  # the host's account
    assert (world.drop / "pwned").read_text().strip() == str(accounts.host.uid)
    assert (world.drop / "script_ran").read_text() == "ran\n"  # exec of its own script
    world.reset()

    policy = write_policy(
        f"""
[sessions.shared]
socket = "{host_session.socket}"
owner = "{accounts.host.name}"
target = "shared"

[programs.attack]
argv = {json.dumps(argv)}
sandbox = true
write = ["{world.wdir}"]

[[grant]]
users = ["{accounts.guest.name}"]
session = "shared"

[[grant]]
users = ["{accounts.guest.name}"]
program = "attack"
"""
    )
    pane = observer.spawn(
        accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], guest_env("run attack")
    )
    assert observer.exit_status(pane, timeout=30) == 0
    results = world.results()
    assert results == {
        "extra_fds": [],
        "write_inside": "ok:1",
        "read_other_pty": "denied:PermissionError",
        "write_outside": "denied:PermissionError",
        "unix_socket": "denied:PermissionError",
        "socketpair_sendto": "denied:PermissionError",
        "tcp_connect": "denied:PermissionError",
        "fork": "denied:PermissionError",
        "thread": "ok:None",
        "memfd": "denied:PermissionError",
        "sysv_ipc": "denied:PermissionError",
        "control_mode": "denied:PermissionError",
        "exec_own_script": "denied:PermissionError",
        "exec_sh": "denied:PermissionError",
        "done": True,
    }
    assert sorted(p.name for p in world.drop.iterdir()) == []
    record = journal.messages(f"GATEKEEPER_USER={accounts.guest.name}")[-1]
    assert (record["decision"], record["program"], record["contained"]) == (
        "allow",
        "attack",
        True,
    )


def test_an_attaching_account_is_refused_an_uncontained_program(
    accounts, host_session, observer, write_policy, journal, gatekeeper_bin
) -> None:
    policy = write_policy(
        f"""
[sessions.shared]
socket = "{host_session.socket}"
owner = "{accounts.host.name}"
target = "shared"

[programs.pager]
argv = ["/usr/bin/less", "--", "/etc/hostname"]

[[grant]]
groups = ["{accounts.group}"]
session = "shared"

[[grant]]
users = ["{accounts.guest.name}"]
program = "pager"
"""
    )
    pane = observer.spawn(
        accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], guest_env("run pager")
    )
    assert observer.exit_status(pane) == 78
    record = journal.messages(f"GATEKEEPER_USER={accounts.guest.name}")[-1]
    assert (record["decision"], record["reason"]) == ("deny", "uncontained_program")
    assert "gatekeeper: " in observer.tmux.capture(pane)
