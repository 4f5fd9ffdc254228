"""Integration tier: the corpus's tmux, vim, less, signal and Python start-up attacks.

Real tmux servers owned by the throwaway host account; the gatekeeper runs as
the guest, through the installed ``python -I`` launcher, on a real pty (a
window of root's observer tmux server); vim and less are the real programs.
What the guest sees is read with capture-pane on the observer, what reaches the
host with capture-pane / list-clients / show-environment on the host's server.

The target server deliberately holds the corpus's three sessions ``shared``,
``sharedsecret`` and ``admin`` (and keeps tmux's default ``update-environment``),
so an inexact target or a leaked environment would be visible.
"""

from __future__ import annotations

import grp
import json
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gkadv_sshd as gs
import gktest
import gkunit
import pytest
from gkhost import Observer, guest_env

pytestmark = [pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

PROJECT = "the project file the guest may read\n"


@dataclass
class Host:
    tmux: gktest.Tmux
    socket: str
    markers: dict[str, str]  # session -> text on its screen


@dataclass
class Bench:
    accounts: Any
    journal: gktest.Journal
    root: Path
    host: Host  # shared, sharedsecret, admin on one server
    solo: Host  # only shared, on its own server (the deployment `share` makes)
    observer: Observer
    policy: Path
    project: Path
    markers: Path  # a sticky 1777 directory: anything that runs as the guest can write here

    def spawn(self, command: str | None, account: Any = None, **extra: str) -> str:
        who = account or self.accounts.guest
        env = guest_env(command, **extra)
        return self.observer.spawn(who, [str(gktest.GATEKEEPER), "--policy", str(self.policy)], env)

    def records(self) -> list[dict[str, Any]]:
        return self.journal.messages(f"GATEKEEPER_USER={self.accounts.guest.name}")


def start_host(account: gktest.Account, directory: Path, gid: int, names: list[str]) -> Host:
    directory.mkdir(mode=0o750)
    os.chown(directory, account.uid, gid)
    directory.chmod(0o750)
    socket = str(directory / "sock")
    tmux = gktest.Tmux(socket, account)
    markers = {}
    for name in names:
        tmux.cmd("-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "sh")
        markers[name] = f"ON-{name.upper()}-{secrets.token_hex(3)}"
        tmux.cmd("send-keys", "-t", f"={name}:", f"echo {markers[name]}", "Enter")
        tmux.wait_screen(f"={name}:", markers[name] + "\n")
    os.chown(socket, account.uid, gid)
    Path(socket).chmod(0o660)
    return Host(tmux, socket, markers)


def policy_text(journal: gktest.Journal, bench_root: Path, accounts: Any, project: Path) -> str:
    guest = accounts.guest.name
    return f"""\
version = 1
[audit]
journal_socket = "{journal.socket}"

[sessions.shared]
socket = "{bench_root}/host/sock"
owner = "{accounts.host.name}"
target = "shared"

[sessions.adm]
socket = "{bench_root}/host/sock"
owner = "{accounts.host.name}"
target = "adm"

[sessions.solo]
socket = "{bench_root}/solo/sock"
owner = "{accounts.host.name}"
target = "shared"

[programs.editor]
argv = ["/usr/bin/vim.basic", "-Z", "-i", "NONE", "--", "{project}"]
sandbox = true

[programs.pager]
argv = ["/usr/bin/less", "--", "{project}"]
sandbox = true

[[grant]]
users = ["{guest}"]
session = "shared"
mode = "read-only"
default = true

[[grant]]
users = ["{guest}"]
session = "adm"
mode = "read-only"

[[grant]]
users = ["{guest}"]
session = "solo"
mode = "read-only"

[[grant]]
users = ["{guest}"]
program = "editor"

[[grant]]
users = ["{guest}"]
program = "pager"
"""


@pytest.fixture(scope="module")
def bench(accounts, journal) -> Iterator[Bench]:
    gktest.require(gktest.GATEKEEPER.exists(), f"{gktest.GATEKEEPER} (run scripts/bootstrap)")
    gktest.require_tool("tmux", "setpriv", "/usr/bin/vim.basic", "/usr/bin/less")
    root = gktest.shared_dir("gk-adv-tmux-")
    gid = grp.getgrnam(accounts.group).gr_gid
    started: list[gktest.Tmux] = []
    try:
        host = start_host(accounts.host, root / "host", gid, ["shared", "sharedsecret", "admin"])
        started.append(host.tmux)
        solo = start_host(accounts.host, root / "solo", gid, ["shared"])
        started.append(solo.tmux)
        for shared in (host, solo):
            shared.tmux.cmd("server-access", "-ar", accounts.guest.name)
        observer_tmux = gktest.Tmux(str(root / "observer.sock"))
        observer_tmux.cmd(
            "-f", "/dev/null", "new-session", "-d", "-s", "obs", "-x", "100", "-y", "30", "sh"
        )
        observer_tmux.cmd("set-option", "-g", "remain-on-exit", "on")
        started.append(observer_tmux)
        project = gktest.write_root_file(root / "project.txt", PROJECT)
        markers = root / "markers"
        markers.mkdir()
        markers.chmod(0o1777)
        policy = gktest.write_root_file(
            root / "policy.toml", policy_text(journal, root, accounts, project)
        )
        yield Bench(
            accounts, journal, root, host, solo, Observer(observer_tmux), policy, project, markers
        )
    finally:
        for server in started:
            server.kill()
        import shutil  # noqa: PLC0415 - teardown only

        shutil.rmtree(root, ignore_errors=True)


def client_sessions(host: Host) -> list[str]:
    out = host.tmux.out("list-clients", "-F", "#{client_session}")
    return out.split()


def detach(bench: Bench, pane: str) -> int:
    """``C-b d`` until the client leaves (keys typed during tmux's terminal queries may be lost)."""
    for _attempt in range(5):
        bench.observer.tmux.cmd("send-keys", "-t", pane, "C-b", "d")
        try:
            return bench.observer.exit_status(pane, timeout=3)
        except gktest.WaitTimeoutError:
            continue
    return bench.observer.exit_status(pane)


# --------------------------------------------------------------------------- targets

TARGETS = [
    ("TMUX-01", None),  # a policy name `adm`, exact: tmux is asked for `=adm` and finds nothing
    ("TMUX-02", 64),
    ("TMUX-04", 64),
    ("TMUX-05", 64),
    ("TMUX-07", 64),
    ("TMUX-08", 64),
    ("TMUX-10", 64),
    ("TMUX-11", 64),
]


@pytest.mark.parametrize(
    ("corpus_id", "code"),
    [pytest.param(i, c, id=i, marks=pytest.mark.corpus(i)) for i, c in TARGETS],
)
def test_a_target_expression_never_attaches_anywhere(bench, corpus, corpus_id, code) -> None:
    """tmux would resolve each of these to ``admin`` or ``sharedsecret`` (prefix, fnmatch,
    ids, client names, ``;``). The gatekeeper never hands tmux the guest's word."""
    command = gkunit.corpus_command(corpus[corpus_id])
    assert command is not None
    pane = bench.spawn(command.decode())
    status = bench.observer.exit_status(pane)
    screen = bench.observer.tmux.capture(pane)
    assert client_sessions(bench.host) == []
    for marker in bench.host.markers.values():
        assert marker not in screen
    if code is None:
        # Allowed by the policy's exact name, refused by tmux's exact match (=adm).
        assert status != 0
        assert bench.records()[-1]["argv"][-2:] == ["-t", "=adm"]
    else:
        assert status == code


@pytest.mark.corpus("TMUX-01", "OK-01")
def test_attach_shared_lands_in_shared_not_sharedsecret(bench) -> None:
    pane = bench.spawn("attach shared")
    bench.observer.tmux.wait_screen(pane, bench.host.markers["shared"])
    assert gktest.wait_until(lambda: client_sessions(bench.host), 10, "the guest") == ["shared"]
    assert detach(bench, pane) == 0


# --------------------------------------------------------------------------- escapes


@pytest.mark.corpus("TMUX-13")
def test_read_only_switch_keys_have_nowhere_to_go_on_a_per_session_server(bench) -> None:
    """TMUX-13: ``prefix ( ) L`` move a read-only client between the server's sessions.

    On the corpus's three-session server tmux < 3.7 lets them (shown below, as the
    reason for the rule); on the deployment the gatekeeper expects - one server per
    shared session, as ``gatekeeperctl share`` makes - the same keys keep the guest on
    ``shared``, and the other sessions are on a server the guest never reaches.
    """
    pane = bench.spawn("attach solo")
    bench.observer.tmux.wait_screen(pane, bench.solo.markers["shared"])
    gktest.wait_until(lambda: client_sessions(bench.solo), 10, "the guest")
    for key in (")", "(", "L"):
        bench.observer.tmux.cmd("send-keys", "-t", pane, "C-b", key)
    assert client_sessions(bench.solo) == ["shared"]
    assert detach(bench, pane) == 0
    assert client_sessions(bench.host) == []

    version = tuple(int(x) for x in re.findall(r"\d+", bench.host.tmux.out("-V"))[:2])
    if version < (3, 7):
        pane = bench.spawn("attach shared")
        bench.observer.tmux.wait_screen(pane, bench.host.markers["shared"])

        def moved() -> bool:
            bench.observer.tmux.cmd("send-keys", "-t", pane, "C-b", ")")
            return client_sessions(bench.host) not in ([], ["shared"])

        gktest.wait_until(moved, 10, "tmux < 3.7 to let a read-only client switch sessions")
        assert detach(bench, pane) == 0


@pytest.mark.corpus("TMUX-19")
def test_a_read_only_guest_cannot_resize_the_hosts_window(bench) -> None:
    """TMUX-19: ``attach -r`` is read-only *and* ignore-size; the ACL's -r alone is not.

    tmux ignores an ignore-size client's size while any other client is attached, so
    the host is attached (full-size window) and the guest joins from a 40x10 terminal:
    the window keeps the host's size. The control attaches the same guest the way the
    ACL alone would (plain ``attach``): the host's window shrinks.
    """
    host = bench.accounts.host
    host_env = {**guest_env(None), "HOME": host.home}
    host_pane = bench.observer.spawn(
        host, ["tmux", "-S", bench.solo.socket, "attach", "-t", "=shared"], host_env
    )
    bench.observer.tmux.wait_screen(host_pane, bench.solo.markers["shared"])

    def width() -> str:
        out: str = bench.solo.tmux.out("display-message", "-p", "-t", "=shared:", "#{window_width}")
        return out.strip()

    full = gktest.wait_until(lambda: width() if width() != "80" else None, 10, "the host's size")
    guest_pane = bench.spawn("attach solo")
    bench.observer.tmux.cmd("resize-window", "-t", guest_pane, "-x", "40", "-y", "10")
    bench.observer.tmux.wait_screen(guest_pane, bench.solo.markers["shared"])
    flags = gktest.wait_until(
        lambda: [f for f in bench.solo.tmux.out("list-clients", "-F", "#{client_flags}").split()
                 if "read-only" in f],
        10,
        "the guest",
    )  # fmt: skip
    assert "ignore-size" in flags[0]
    assert width() == full
    assert detach(bench, guest_pane) == 0

    naive = bench.observer.spawn(
        bench.accounts.guest, ["tmux", "-S", bench.solo.socket, "attach", "-t", "=shared"],
        guest_env(None),
    )  # fmt: skip
    bench.observer.tmux.cmd("resize-window", "-t", naive, "-x", "40", "-y", "10")
    gktest.wait_until(lambda: width() == "40", 10, "the plain attach to shrink the window")
    assert detach(bench, naive) == 0
    assert detach(bench, host_pane) == 0


@pytest.mark.corpus("ENV-18")
def test_the_guests_environment_never_reaches_the_hosts_session(bench) -> None:
    """ENV-18: tmux copies DISPLAY, SSH_AUTH_SOCK... from an attaching client (default
    update-environment, left on here). The gatekeeper execs ``attach -E`` with a clean env.
    The control, a plain ``tmux attach -r`` (the seed recipe), shows the leak is real."""
    poison = f"attacker-{secrets.token_hex(3)}.invalid:0"
    pane = bench.spawn("attach shared", DISPLAY=poison, SSH_AUTH_SOCK=f"/tmp/{poison}")
    bench.observer.tmux.wait_screen(pane, bench.host.markers["shared"])
    gktest.wait_until(lambda: client_sessions(bench.host), 10, "the guest")
    assert poison not in bench.host.tmux.out("show-environment", "-t", "=shared")
    assert detach(bench, pane) == 0

    naive = bench.observer.spawn(
        bench.accounts.guest,
        ["tmux", "-S", bench.host.socket, "attach", "-r", "-t", "=sharedsecret"],
        {**guest_env(None), "DISPLAY": poison},
    )
    bench.observer.tmux.wait_screen(naive, bench.host.markers["sharedsecret"])
    gktest.wait_until(
        lambda: poison in bench.host.tmux.out("show-environment", "-t", "=sharedsecret"),
        10,
        "the seed recipe to leak DISPLAY",
    )
    assert detach(bench, naive) == 0


@pytest.mark.corpus("TMUX-16")
def test_a_squatted_socket_is_refused_and_flagged(bench, adv_dir) -> None:
    """TMUX-16: in a group-writable (not sticky) directory a member plants its own server.

    The gatekeeper refuses to attach (the directory is the guest's to rewrite, and the
    socket is not the owner's); ``check`` and ``doctor`` flag the directory. The
    hardened layout (host-owned 0750) is what every other test here attaches through.
    """
    accounts = bench.accounts
    gid = grp.getgrnam(accounts.group).gr_gid
    directory = adv_dir / "squat"
    directory.mkdir()
    os.chown(directory, accounts.host.uid, gid)
    directory.chmod(0o770)
    socket = str(directory / "sock")
    squatter = gktest.Tmux(socket, accounts.member)
    squatter.cmd("-f", "/dev/null", "new-session", "-d", "-s", "shared", "sh")
    try:
        squatter.cmd("server-access", "-aw", accounts.guest.name)
        Path(socket).chmod(0o666)
        policy = gktest.write_root_file(
            adv_dir / "squat.toml",
            f"""version = 1
[audit]
journal_socket = "{bench.journal.socket}"
[sessions.shared]
socket = "{socket}"
owner = "{accounts.host.name}"
target = "shared"
[[grant]]
users = ["{accounts.guest.name}"]
session = "shared"
""",
        )
        pane = bench.observer.spawn(
            accounts.guest,
            [str(gktest.GATEKEEPER), "--policy", str(policy)],
            guest_env("attach shared"),
        )
        assert bench.observer.exit_status(pane) == 1
        assert squatter.out("list-clients") == ""
        record = bench.records()[-1]
        assert record["decision"] == "deny"
        assert record["reason"].startswith("socket_")
        check = subprocess.run(
            [str(gktest.GATEKEEPERCTL), "check", "--policy", str(policy)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "not sticky" in check.stdout + check.stderr
        findings = gs.doctor(policy, Path("/dev/null"))
        assert gs.status(findings, "session", "shared") == "fail"
    finally:
        squatter.kill()


@pytest.mark.corpus("TMUX-17")
def test_guest_text_never_reaches_a_tmux_format(bench, corpus) -> None:
    """TMUX-17: ``#(...)`` in anything tmux expands runs as the server owner.

    The gatekeeper never passes guest text to tmux: the request is denied before
    anything runs (and an allowed attach's argv is policy strings only - see the
    fuzz test). Here the corpus's payload, pointed at a marker, is sent both as a
    request and as the TERM tmux would see; nothing runs as the host, and nothing of
    it lands in the host server's options or environment.
    """
    marker = bench.markers / gs.unique("format-ran")
    payload = f"#(touch {marker})"
    command = corpus["TMUX-17"]["vector"]["original_command"].replace("#(id > /tmp/x)", payload)
    pane = bench.spawn(command)
    assert bench.observer.exit_status(pane) == 64
    pane = bench.spawn("attach shared", TERM=f"xterm{payload}")
    bench.observer.tmux.wait_screen(pane, bench.host.markers["shared"])
    assert detach(bench, pane) == 0
    assert not marker.exists()
    for args in (["show-options", "-g"], ["show-environment", "-g"], ["show-options", "-s"]):
        assert "#(touch" not in bench.host.tmux.out(*args)


# --------------------------------------------------------------------------- vim and less


@pytest.mark.corpus("VIM-04", "VIM-05", "VIM-07")
def test_the_editor_runs_no_commands_and_writes_no_dotfiles(bench) -> None:
    """VIM-04: -Z refuses every way to a shell (E145). VIM-05: writefile() still works
    under -Z - it is the root-owned home that stops ``~/.bashrc``. VIM-07: VIMINIT in
    the guest's environment never reaches vim (the gatekeeper builds the env from scratch);
    the control runs the same vim without the gatekeeper and VIMINIT runs."""
    m = {name: bench.markers / gs.unique(name) for name in ("bang", "system", "viminit", "ctl")}
    viminit = f"call writefile(['x'], '{m['viminit']}')"
    pane = bench.spawn("run editor", VIMINIT=viminit)
    bench.observer.tmux.wait_screen(pane, "the project file")
    keys = [
        f":!touch {m['bang']}",
        f":call system('touch {m['system']}')",
        ":terminal",
        ":call writefile(['touch /tmp/pwned'], expand('~/.bashrc'))",
    ]
    screens = []
    for line in keys:
        bench.observer.tmux.cmd("send-keys", "-t", pane, "Escape", line, "Enter")
        if "writefile" in line:
            screens.append(bench.observer.tmux.wait_screen(pane, "E482"))
        else:
            screens.append(bench.observer.tmux.wait_screen(pane, "E145"))
            bench.observer.tmux.cmd("send-keys", "-t", pane, "Enter")
    bench.observer.tmux.cmd("send-keys", "-t", pane, "Escape", ":qa!", "Enter")
    assert bench.observer.exit_status(pane) == 0
    assert not m["bang"].exists()
    assert not m["system"].exists()
    assert not m["viminit"].exists()
    assert not (Path(bench.accounts.guest.home) / ".bashrc").exists()

    control = bench.observer.spawn(
        bench.accounts.guest,
        ["/usr/bin/vim.basic", "-Z", "-i", "NONE", "--", str(bench.project)],
        {**guest_env(None), "HOME": bench.accounts.guest.home,
         "VIMINIT": f"call writefile(['x'], '{m['ctl']}')"},
    )  # fmt: skip
    gktest.wait_until(m["ctl"].exists, 10, "VIMINIT to run in the control")
    bench.observer.tmux.cmd("send-keys", "-t", control, "Escape", ":qa!", "Enter")
    bench.observer.exit_status(control)


@pytest.mark.corpus("LESS-01", "LESS-02", "LESS-04")
def test_the_pager_is_secure_and_ignores_lesskey(bench) -> None:
    """LESS-01/04: with LESSSECURE=1 (set by the gatekeeper) ``!``, ``|``, ``v``, ``:e``
    answer "Command not available". LESS-02: a ~/.lesskey ``#env`` section that sets
    LESSOPEN is not read; the control runs less without LESSSECURE and it is."""
    marker = bench.markers / gs.unique("lessopen")
    lesskey = Path(bench.accounts.guest.home) / ".lesskey"
    lesskey.write_text(f"#env\nLESSOPEN=|touch {marker}; cat %s\n")
    lesskey.chmod(0o644)
    try:
        pane = bench.spawn("run pager")
        bench.observer.tmux.wait_screen(pane, "the project file")
        # ``s`` (save a pipe's input) needs a pipe; the argv names a file, so it never applies.
        for keys in (["!"], ["|"], ["v"], [":", "e"]):
            bench.observer.tmux.cmd("send-keys", "-t", pane, *keys)
            bench.observer.tmux.wait_screen(pane, "Command not available")
            bench.observer.tmux.cmd("send-keys", "-t", pane, "Enter")
            bench.observer.tmux.wait_screen(pane, "(END)")
        bench.observer.tmux.cmd("send-keys", "-t", pane, "q")
        assert bench.observer.exit_status(pane) == 0
        assert not marker.exists()

        control = bench.observer.spawn(
            bench.accounts.guest,
            ["/usr/bin/less", "--", str(bench.project)],
            {**guest_env(None), "HOME": bench.accounts.guest.home},
        )
        gktest.wait_until(marker.exists, 10, "lesskey's LESSOPEN in the control")
        bench.observer.tmux.cmd("send-keys", "-t", control, "q")
        bench.observer.exit_status(control)
    finally:
        lesskey.unlink(missing_ok=True)


# --------------------------------------------------------------------------- signals, Python


@pytest.mark.corpus("LOG-10", "LOG-11")
def test_signals_while_deciding_change_nothing(bench, adv_dir) -> None:
    """LOG-10: Ctrl-C / Ctrl-\\ / Ctrl-Z from the guest's pty while the gatekeeper works.

    The gatekeeper is held still inside its audit write (a FIFO sink nobody reads yet),
    gets SIGINT, SIGQUIT and SIGTSTP, and must neither die, nor stop, nor skip the
    record: once released it finishes with the denial's exit code and one record.
    LOG-11 (an SSH "signal" channel request) cannot be sent by OpenSSH's client; sshd
    refuses it for forced-command sessions (session.c), and what it would deliver -
    a signal - is shown here to change nothing.
    """
    fifo = adv_dir / "audit.fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o622)
    policy = gktest.write_root_file(
        adv_dir / "fifo.toml",
        f'version = 1\n[audit]\nsink = "file"\nfile = "{fifo}"\non_failure = "allow"\n',
    )
    guest = bench.accounts.guest
    process = subprocess.Popen(
        [str(gktest.GATEKEEPER), "--policy", str(policy)],
        env=guest_env("bash"),
        user=guest.uid,
        group=guest.gid,
        extra_groups=guest.groups,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wchan = Path(f"/proc/{process.pid}/wchan")
        gktest.wait_until(
            lambda: wchan.read_text() == "wait_for_partner", 15, "the gatekeeper in its audit write"
        )
        for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
            os.kill(process.pid, signum)
        state = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()[0]
        assert state in ("S", "D", "R"), f"state {state} after the signals"
        line = gs.read_fifo(fifo)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    assert out == b""
    assert b"Traceback" not in err
    assert b"access denied (ref " in err
    (record,) = [json.loads(x) for x in line.splitlines()]
    assert record["decision"] == "deny"


@pytest.mark.corpus("ENV-11", "ENV-12", "ENV-14")
def test_python_start_up_hooks_are_ignored(bench, adv_dir) -> None:
    """ENV-11 (PYTHONINSPECT: a REPL after a denial), ENV-12 (a user-site .pth),
    ENV-14 (PYTHONPATH/STARTUP/HOME/BREAKPOINT): the launcher's ``-I`` ignores them all.
    The guest-writable home here is the weak deployment these attacks need."""
    guest = bench.accounts.guest
    home = adv_dir / "home"
    home.mkdir()
    os.chown(home, guest.uid, guest.gid)
    marks = adv_dir / "marks"
    marks.mkdir(mode=0o1777)
    marks.chmod(0o1777)
    site = (
        gktest.run_as(
            guest,
            [str(gktest.PYTHON), "-c", "import site; print(site.getusersitepackages())"],
            {"HOME": str(home)},
        )
        .stdout.decode()
        .strip()
    )
    gktest.run_as(guest, ["mkdir", "-p", site], {"PATH": "/usr/bin:/bin"})
    Path(site, "evil.pth").write_text(f"import os; open('{marks}/pth', 'w').close()\n")
    evil = adv_dir / "evilpp"
    evil.mkdir()
    for name in ("sitecustomize", "startup", "json"):
        (evil / f"{name}.py").write_text(f"open('{marks}/{name}', 'w').close()\n")
    env = guest_env(
        "not-allowed",
        HOME=str(home),
        PYTHONINSPECT="1",
        PYTHONPATH=str(evil),
        PYTHONSTARTUP=str(evil / "startup.py"),
        PYTHONHOME="/tmp/x",
        PYTHONBREAKPOINT="os.system",
    )
    repl = f"import os; os.system('touch {marks}/repl')\n".encode()
    result = gktest.run_as(
        guest, [str(gktest.GATEKEEPER), "--policy", str(bench.policy)], env, input=repl,
        cwd=str(evil),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert b">>>" not in result.stdout + result.stderr
    assert sorted(p.name for p in marks.iterdir()) == []
