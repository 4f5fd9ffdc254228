"""``gatekeeperctl demo``: the README's first command, run for real and joined as the guest.

The demo must leave nothing behind: no process, account, group, journal or
file. Both ways to end it are tested: ``--background`` + ``--stop``, and
Ctrl-C in the terminal that runs it.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import secrets
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

BANNER = "ssh-gatekeeper demo: this is the host's tmux session."


def ctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gktest.GATEKEEPERCTL), "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=gksshd.client_env(),
    )


def printed(output: str, prefix: str) -> list[str]:
    """The argv of the first printed command line starting with ``prefix``."""
    for line in output.splitlines():
        if line.strip().startswith(prefix):
            return shlex.split(line.strip())
    raise AssertionError(f"no line starting with {prefix!r} in:\n{output}")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def assert_nothing_left(directory: Path, state: dict[str, Any]) -> None:
    assert not directory.exists()
    for name in state["users"]:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
    with pytest.raises(KeyError):
        grp.getgrnam(state["group"])
    assert not alive(state["sshd_pid"])
    assert not alive(state["journald_pid"])
    assert not alive(state["keepalive_pid"])
    assert not Path(f"/run/systemd/journal.{state['namespace']}").exists()
    machine_id = Path("/etc/machine-id").read_text().strip()
    assert not Path(f"/var/log/journal/{machine_id}.{state['namespace']}").exists()


@contextlib.contextmanager
def demo_dir():
    directory = Path(f"/run/gk-demo-test-{secrets.token_hex(3)}")
    try:
        yield directory
    finally:
        if (directory / "state.json").exists():
            ctl("--stop", "--dir", str(directory))


def test_background_demo_joined_as_the_guest_then_stopped(site) -> None:
    gktest.require(gktest.GATEKEEPER.exists(), str(gktest.GATEKEEPER))
    with demo_dir() as directory, gksshd.terminal(site.root) as term:
        started = ctl("--background", "--dir", str(directory))
        assert started.returncode == 0, started.stderr
        state = json.loads((directory / "state.json").read_text())

        # The printed join line works as printed, and the guest sees the live session.
        join = printed(started.stdout, "ssh -F")
        assert join[-1] == "gk-demo"
        pane = term.run(join)
        term.tmux.wait_screen(pane, BANNER, timeout=20)
        host = gktest.Tmux(state["socket"])  # root may talk to any tmux server
        readonly = host.out("list-clients", "-F", "#{client_readonly}").split()
        assert readonly == ["1"]  # attach -r, and server-access -ar on the host's side
        # The printed forbidden attempt is denied with one line and exit 1.
        forbidden = printed(started.stdout, f"ssh -F {directory}/ssh_config gk-demo bash")
        result = subprocess.run(
            forbidden, capture_output=True, timeout=30, check=False, env=gksshd.client_env()
        )
        assert result.returncode == 1
        assert result.stderr.decode().startswith("gatekeeper: access denied (ref ")

        # The printed journalctl line shows the records: the join and the denial.
        journal = printed(started.stdout, "journalctl")

        def audit_records() -> list[dict[str, object]]:
            out = subprocess.run(journal, capture_output=True, text=True, check=False).stdout
            return [json.loads(line) for line in out.splitlines()]

        def connects_and_join() -> list[dict[str, object]] | None:
            records = audit_records()
            connects = [r for r in records if r["event"] == "connect"]
            joined = any(r["event"] == "join" for r in records)
            return connects if len(connects) >= 2 and joined else None

        # The demo shares with `gatekeeperctl share`, so its hooks record the join too.
        records = gktest.wait_until(connects_and_join, 10, "two connect records and a join")
        assert {(r["request"], r["decision"]) for r in records} >= {
            ("default", "allow"),
            ("unknown", "deny"),
        }

        stopped = ctl("--stop", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        term.exit_status(pane, timeout=30)  # the guest was disconnected
        assert_nothing_left(directory, state)


def test_ctrl_c_tears_the_interactive_demo_down(site) -> None:
    gktest.require(gktest.GATEKEEPER.exists(), str(gktest.GATEKEEPER))
    with demo_dir() as directory, gksshd.terminal(site.root) as term:
        pane = term.run([str(gktest.GATEKEEPERCTL), "demo", "--dir", str(directory)])
        term.tmux.wait_screen(pane, "Press Ctrl-C", timeout=30)
        state = json.loads((directory / "state.json").read_text())
        assert alive(state["sshd_pid"])
        # A demo left alone still works: a hand-started journald namespace exits after
        # 30 s without a stdout stream, which would turn every login into exit 75.
        # Waiting out that idle timeout is the point here, not synchronisation.
        time.sleep(32)
        listed = subprocess.run(
            ["ssh", "-F", f"{directory}/ssh_config", "gk-demo", "list"],
            capture_output=True, timeout=30, check=False, env=gksshd.client_env(),
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert b"shared" in listed.stdout
        term.tmux.cmd("send-keys", "-t", pane, "C-c")
        screen = term.tmux.wait_screen(pane, "stopped, everything removed", timeout=30)
        assert "Traceback" not in screen
        assert_nothing_left(directory, state)


def test_run_for_tears_down_by_itself() -> None:
    gktest.require(gktest.GATEKEEPER.exists(), str(gktest.GATEKEEPER))
    with demo_dir() as directory:
        result = ctl("--run-for", "1", "--dir", str(directory))
        assert result.returncode == 0, result.stderr
        assert "ssh -F" in result.stdout
        assert not directory.exists()


def test_demo_refuses_a_normal_user(accounts) -> None:
    result = gktest.run_as(
        accounts.outsider,
        [str(gktest.GATEKEEPERCTL), "demo", "--dir", "/tmp/gk-demo-never"],
        {"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 77
    assert b"needs root" in result.stderr
    assert not os.path.exists("/tmp/gk-demo-never")


def test_demo_never_adopts_a_directory_it_did_not_make(world_dir) -> None:
    (world_dir / "keep.txt").write_text("mine\n")
    result = ctl("--background", "--dir", str(world_dir))
    assert result.returncode == 1
    assert "exists but holds no demo" in result.stderr
    assert (world_dir / "keep.txt").read_text() == "mine\n"
    stopped = ctl("--stop", "--dir", str(world_dir))
    assert stopped.returncode == 1
    assert (world_dir / "keep.txt").exists()
