"""``gatekeeperctl sshd-config`` through a real sshd: ``sshd -t`` and ``sshd -T -C``."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import gksshd
import gktest
import pytest

from gatekeeper.deploy import sshdconfig

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


def _group_policy(site, accounts, name: str, owner: str) -> Path:
    return gktest.write_root_file(
        site.root / f"{name}.toml",
        f"""version = 1
[sessions.shared]
socket = "/run/gatekeeper/shared/sock"
owner = "{owner}"
target = "shared"
[programs.pager]
argv = ["/usr/bin/less", "--", "/etc/hostname"]
[[grant]]
groups = ["{accounts.group}"]
program = "pager"
""",
    )


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gktest.GATEKEEPERCTL), *args], capture_output=True, text=True, check=False
    )


def test_a_group_grant_is_matched_by_the_members_names(site, accounts) -> None:
    policy = _group_policy(site, accounts, "group-policy", accounts.host.name)
    text = gksshd.sshd_config(policy)
    members = sorted([accounts.guest.name, accounts.pairer.name, accounts.member.name])
    assert f"Match User {','.join(members)}\n" in text
    assert "Match Group" not in text
    sshd = site.start("groups", text)
    values = site.effective(sshd, accounts.member.name)
    assert values["disableforwarding"] == ["yes"]
    assert values["forcecommand"][0].startswith(str(gktest.GATEKEEPER))
    assert site.effective(sshd, accounts.outsider.name)["forcecommand"] == ["none"]


def test_the_host_in_the_share_group_is_never_captured(site, accounts) -> None:
    """SECURITY.md §30: host and guest both in the group, a grant for the group."""
    host = gktest.create_account(f"gk-hostg-{secrets.token_hex(2)}", [accounts.group])
    try:
        policy = _group_policy(site, accounts, "seed-trap", host.name)
        # check fails (not warns) and names the host and the grant.
        checked = _ctl("check", "--no-cache", str(policy))
        assert checked.returncode == 1, checked.stdout
        assert f"error: grant[0].groups ({accounts.group}): {host.name} would get" in checked.stdout
        assert "it owns a session" in checked.stdout
        # sshd-config prints no Match block at all.
        generated = _ctl("sshd-config", "--policy", str(policy))
        assert generated.returncode == 1
        assert generated.stdout == ""
        assert host.name in generated.stderr
        # CONTROL: the 0.1 output (Match Group) gives the host the ForceCommand.
        block = sshdconfig.render_block(f"Group {accounts.group}", str(gktest.GATEKEEPER))
        old = site.start("seed-trap-control", block)
        assert site.effective(old, host.name)["forcecommand"] == [str(gktest.GATEKEEPER)]
        # Naming the guest instead: the host keeps its shell, the guest gets the gatekeeper.
        fixed = gktest.write_root_file(
            site.root / "seed-fixed.toml",
            policy.read_text().replace(
                f'groups = ["{accounts.group}"]', f'users = ["{accounts.guest.name}"]'
            ),
        )
        assert _ctl("check", "--no-cache", str(fixed)).returncode == 0
        sshd = site.start("seed-fixed", gksshd.sshd_config(fixed))
        assert site.effective(sshd, host.name)["forcecommand"] == ["none"]
        assert site.effective(sshd, accounts.guest.name)["forcecommand"][0].startswith(
            str(gktest.GATEKEEPER)
        )
    finally:
        gktest.delete_account(host.name)


def test_a_non_guest_group_member_fails_check_and_doctor_leaves_it_alone(site, accounts) -> None:
    """A member with bash and its own home is someone's account, not a guest."""
    person = gktest.create_account(  # noqa: S604 - a person's ordinary account is the point
        f"gk-human-{secrets.token_hex(2)}", [accounts.group], shell="/bin/bash"
    )
    try:
        policy = _group_policy(site, accounts, "human", accounts.host.name)
        checked = _ctl("check", "--no-cache", str(policy))
        assert checked.returncode == 1
        assert f"{person.name} would get the gatekeeper's ForceCommand" in checked.stdout
        assert "not a guest account: its login shell is /bin/bash" in checked.stdout
        doctor = _ctl("doctor", "--policy", str(policy), "--json")
        lines = [c for c in json.loads(doctor.stdout)["checks"] if c["subject"] == person.name]
        assert [c["status"] for c in lines] == ["fail"]
        assert "usermod" not in lines[0]["fix"]
        assert "chown" not in lines[0]["fix"]
    finally:
        gktest.delete_account(person.name)


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
