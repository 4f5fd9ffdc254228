"""``gatekeeperctl doctor`` against the live deployments behind real sshds.

The hardened deployment passes; the weakened one (bash login shell, a home
the guest owns, a ForceCommand-only sshd block) fails, each problem on its
own line with a fix - so the test can fail both ways.
"""

from __future__ import annotations

import json
import subprocess

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.accounts]


def doctor(policy, sshd, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        str(gktest.GATEKEEPERCTL), "doctor", "--policy", str(policy),
        "--sshd-config", str(sshd.config), "--gatekeeper", str(gktest.GATEKEEPER), *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_hardened_deployment_passes(deployment) -> None:
    result = doctor(deployment.policy, deployment.sshd)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    guest = deployment.accounts.guest.name
    assert any(
        line.startswith("OK") and "sshd.disableforwarding" in line and guest in line
        for line in lines
    )
    assert any(line.startswith("OK") and "login_shell" in line and guest in line for line in lines)
    # The offline session is reported, not failed: it is simply not shared right now.
    assert any(line.startswith("WARN") and "offline" in line and "fix:" in line for line in lines)
    assert "FAIL" not in result.stdout


def test_the_weakened_deployment_fails_with_a_fix_per_problem(weak) -> None:
    result = doctor(weak.policy, weak.sshd)
    assert result.returncode == 1, result.stdout
    failed = {
        line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("FAIL")
    }
    expected = (
        "login_shell", "home", "sshd.disableforwarding", "sshd.allowtcpforwarding",
        "sshd.allowstreamlocalforwarding", "sshd.x11forwarding", "sshd.acceptenv",
    )  # fmt: skip
    for check in expected:
        assert check in failed, (check, result.stdout)
        assert "fix:" in failed[check]
    assert "/bin/bash" in failed["login_shell"]
    assert ".bashrc" in failed["home"] or "owned by uid" in failed["home"]


def test_json_report(weak) -> None:
    result = doctor(weak.policy, weak.sshd, "--json")
    data = json.loads(result.stdout)
    assert data["ok"] is False
    statuses = {(c["check"], c["subject"]): c["status"] for c in data["checks"]}
    assert statuses[("login_shell", weak.account.name)] == "fail"
    assert all(c["fix"] for c in data["checks"] if c["status"] == "fail")


def test_a_launcher_that_is_not_isolated_fails(deployment) -> None:
    """SECURITY.md §13: a console script (no -I) lets a .pth or PYTHONINSPECT run code."""
    site = deployment.site
    script = gktest.write_root_file(
        site.root / "console-script",
        "#!/usr/bin/python3\nfrom gatekeeper.login.entry import main\nmain()\n",
        mode=0o755,
    )
    text = gksshd.sshd_config(deployment.policy, gatekeeper=script)
    config = site.write_config("console-script", text)
    argv = [
        str(gktest.GATEKEEPERCTL), "doctor", "--policy", str(deployment.policy),
        "--sshd-config", str(config), "--gatekeeper", str(script),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    launcher = [line for line in result.stdout.splitlines() if " launcher " in line]
    assert len(launcher) == 1
    assert launcher[0].startswith("FAIL")
    assert "-I" in launcher[0]
    assert "fix:" in launcher[0]
    # ...while the ForceCommand itself is what doctor was told to expect.
    assert "FAIL sshd.forcecommand" not in result.stdout
