"""The launcher runs Python isolated (SPEC §4, SECURITY.md §13, corpus ENV-11/12/14).

Each attack is run twice: through the real launcher (nothing may happen) and
through a plain, non-isolated interpreter doing the same import (the attack
must work there) - so the test shows the launcher is what stops it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import gktest
import pytest
from gkhost import guest_env

pytestmark = [pytest.mark.accounts, pytest.mark.journald]


def plant(home: Path, markers: Path, account) -> dict[str, str]:
    """A user-site .pth, a PYTHONPATH module and a cwd module that each drop a marker."""
    site = subprocess.run(
        [str(gktest.PYTHON), "-c", "import site; print(site.getusersitepackages())"],
        env={"HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
        user=account.uid,
    ).stdout.strip()
    Path(site).mkdir(parents=True)
    Path(site, "evil.pth").write_text(f"import os; open('{markers}/pth', 'w').close()\n")
    evil = home / "evilpath"
    evil.mkdir()
    for name in ("sitecustomize", "usercustomize", "secrets", "tomllib"):
        (evil / f"{name}.py").write_text(f"open('{markers}/{name}', 'w').close()\n")
    (home / "secrets.py").write_text(f"open('{markers}/cwd-secrets', 'w').close()\n")
    return {
        "HOME": str(home),
        "PYTHONPATH": str(evil),
        "PYTHONSTARTUP": str(evil / "sitecustomize.py"),
        "PYTHONINSPECT": "1",
    }


@pytest.fixture
def planted(accounts, world_dir, journal):
    home = world_dir / "home"
    home.mkdir()
    markers = world_dir / "markers"
    markers.mkdir(mode=0o1777)
    markers.chmod(0o1777)
    env = plant(home, markers, accounts.guest)
    policy = gktest.write_root_file(
        world_dir / "policy.toml", f'version = 1\n[audit]\njournal_socket = "{journal.socket}"\n'
    )
    return home, markers, env, policy


REPL_INPUT = b"import os; os.system('touch {markers}/repl')\nexit()\n"


def test_the_launcher_ignores_python_environment_and_user_site(
    accounts, planted, gatekeeper_bin
) -> None:
    home, markers, env, policy = planted
    result = gktest.run_as(
        accounts.guest,
        ["script", "-qec", f"{gatekeeper_bin} --policy {policy}", "/dev/null"],
        {**guest_env("bash"), **env},
        cwd=home,
        input=REPL_INPUT.replace(b"{markers}", str(markers).encode()),
        capture_output=True,
    )
    # script(1) reports the child's status: denied (1), and no REPL ran on the pty.
    assert result.returncode == 1, result.stdout
    assert sorted(os.listdir(markers)) == []


def test_the_same_attacks_work_on_a_plain_interpreter(accounts, planted) -> None:
    """Control: Debian's python3 without -I (a pip console script's shebang) runs each one.

    This is what the launcher defends against, so the test above can fail.
    """
    home, markers, env, _policy = planted
    gktest.run_as(
        accounts.guest,
        ["script", "-qec", "/usr/bin/python3 -c 'import secrets'", "/dev/null"],
        {**guest_env("bash"), **env},
        cwd=home,
        input=REPL_INPUT.replace(b"{markers}", str(markers).encode()),
        capture_output=True,
    )
    found = set(os.listdir(markers))
    assert {"pth", "sitecustomize", "cwd-secrets", "repl"} <= found
