"""The attack corpus's ``startup-files`` and ``env-injection`` cases through a real sshd.

Either the deployment defeats them, or doctor flags the deployment that
allows them (tests/e2e/test_doctor.py). Each attack is also shown to work
where the protection is missing, so a test here can fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.accounts]

PAYLOAD = "id; echo GATEKEEPER-BYPASSED"
ENV_ATTACK = (
    "SetEnv LC_PWN=$(id>/tmp/gk-pwned) LANG=xx LC_ALL=../../../../tmp/evil "
    "BASH_ENV=/tmp/e PYTHONPATH=/tmp/e LD_PRELOAD=/tmp/e.so"
)


def test_env04_bashrc_runs_before_a_bare_forcecommand(weak) -> None:
    """The attack is real: with bash and a guest-owned home the gatekeeper never runs."""
    result = weak.sshd.ssh(weak.key, weak.account.name, command=(PAYLOAD,))
    assert "GATEKEEPER-BYPASSED" in result.stdout.decode()
    assert f"uid={weak.account.uid}" in result.stdout.decode()


def test_env04_is_defeated_by_sh_and_a_root_owned_home(deployment) -> None:
    home = Path(deployment.accounts.guest.home)
    planted = [home / ".bashrc", home / ".profile"]
    try:
        for path in planted:  # even if such files existed, sh -c reads none of them
            gktest.write_root_file(path, 'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
        result = deployment.ssh("guest", command=(PAYLOAD,))
        assert result.returncode == 64
        assert b"GATEKEEPER-BYPASSED" not in result.stdout + result.stderr
        assert result.stderr.startswith(b"gatekeeper: request not understood")
    finally:
        for path in planted:
            path.unlink(missing_ok=True)


def test_env01_client_environment_never_reaches_the_program(deployment) -> None:
    """ENV-01/02/17: the Match block's AcceptEnv drops LC_*; the gatekeeper's env is its own."""
    result = deployment.ssh("guest", "-tt", "-o", ENV_ATTACK, command=("run", "printenv"))
    assert result.returncode == 0, result.stdout
    env = dict(line.split("=", 1) for line in result.stdout.decode().splitlines() if "=" in line)
    env = {k.strip(): v.strip() for k, v in env.items()}
    assert "LC_PWN" not in env
    assert "LC_ALL" not in env
    assert not {"BASH_ENV", "PYTHONPATH", "LD_PRELOAD"} & set(env)
    assert env["LANG"] == "C.UTF-8"
    assert not Path("/tmp/gk-pwned").exists()


def test_env01_acceptenv_override_is_what_stops_lc_at_sshd(deployment) -> None:
    """At the sshd layer: LC_* arrives verbatim with Debian's AcceptEnv, not with ours."""
    site, guest = deployment.site, deployment.accounts.guest.name
    generated = deployment.sshd.config.parent / "hardened.d" / "10-gatekeeper.conf"
    hardened_env = re.sub(r"ForceCommand .*", "ForceCommand /usr/bin/env", generated.read_text())
    naive_env = f"Match User {guest}\n    ForceCommand /usr/bin/env\n"
    seen = {}
    for name, dropin in (("env-hardened", hardened_env), ("env-naive", naive_env)):
        sshd = site.start(name, dropin)
        result = sshd.ssh(deployment.keys["guest"], guest, "-o", ENV_ATTACK)
        seen[name] = result.stdout.decode()
    assert "LC_PWN=$(id>/tmp/gk-pwned)" in seen["env-naive"]
    assert "LC_PWN" not in seen["env-hardened"]
    assert "LD_PRELOAD" not in seen["env-naive"] + seen["env-hardened"]
