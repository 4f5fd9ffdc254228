"""``gatekeeperctl sshd-config`` through a real sshd: ``sshd -t`` and ``sshd -T -C``."""

from __future__ import annotations

import subprocess

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.accounts]

#: What every guest must get, whatever Debian's globals say (SECURITY.md §1.7-1.8).
HARDENED = {
    "disableforwarding": ["yes"],
    "permittunnel": ["no"],
    "allowtcpforwarding": ["no"],
    "allowstreamlocalforwarding": ["no"],
    "allowagentforwarding": ["no"],
    "x11forwarding": ["no"],
    "permitopen": ["none"],
    "permitlisten": ["none"],
    "permituserrc": ["no"],
    "permittty": ["yes"],
    "exposeauthinfo": ["yes"],
    "maxsessions": ["1"],
    "authenticationmethods": ["publickey"],
    "acceptenv": ["GATEKEEPER_ACCEPTS_NO_CLIENT_ENV"],
}


def test_the_generated_block_passes_sshd_t(deployment) -> None:
    text = gksshd.sshd_config(deployment.policy)
    assert text.count("\nMatch User ") == 1
    result = subprocess.run(
        [gksshd.SSHD, "-t", "-f", str(deployment.sshd.config)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    # The global-only lines are there, as comments sshd ignores.
    assert "#   PermitUserEnvironment no" in text
    assert "#   LogLevel VERBOSE" in text


def test_every_guest_gets_the_hardened_values_over_debian_globals(deployment, accounts) -> None:
    for account in (accounts.guest, accounts.pairer, accounts.member):
        values = deployment.site.effective(deployment.sshd, account.name)
        assert values["forcecommand"] == [f"{gktest.GATEKEEPER} --policy {deployment.policy}"], (
            account
        )
        for keyword, want in HARDENED.items():
            assert values[keyword] == want, (account.name, keyword)
    # An account the policy does not name keeps the (Debian-like) globals: the
    # Match block is scoped to the guests, and the test would notice if it were not.
    other = deployment.site.effective(deployment.sshd, accounts.host.name)
    assert other["forcecommand"] == ["none"]
    assert other["x11forwarding"] == ["yes"]
    assert sorted(other["acceptenv"]) == ["LANG", "LC_*"]


def test_a_group_grant_gets_a_match_group_block(site, accounts) -> None:
    policy = gktest.write_root_file(
        site.root / "group-policy.toml",
        f"""version = 1
[programs.pager]
argv = ["/usr/bin/less", "--", "/etc/hostname"]
[[grant]]
groups = ["{accounts.group}"]
program = "pager"
""",
    )
    text = gksshd.sshd_config(policy)
    assert f"Match Group {accounts.group}\n" in text
    assert "Match User" not in text
    sshd = site.start("groups", text)
    values = site.effective(sshd, accounts.member.name)
    assert values["disableforwarding"] == ["yes"]
    assert values["forcecommand"][0].startswith(str(gktest.GATEKEEPER))
    assert site.effective(sshd, accounts.outsider.name)["forcecommand"] == ["none"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gatekeeper", "gatekeeper"], "absolute path"),
        (["--gatekeeper", "/usr/bin/gate keeper"], "absolute path"),
        (["--gatekeeper", "/usr/bin/$(id)"], "absolute path"),
    ],
)
def test_a_forcecommand_a_shell_would_reinterpret_is_refused(deployment, args, message) -> None:
    result = subprocess.run(
        [str(gktest.GATEKEEPERCTL), "sshd-config", "--policy", str(deployment.policy), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""
