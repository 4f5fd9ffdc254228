"""Keys in the policy, checked by sshd: the person is sshd's word (SECURITY.md §29).

One shared guest account (the pairer, which the host's tmux server lets write),
two people on it with their own keys and their own grants: bob read-only (a
full public key line in the policy), carol read-write (a fingerprint). sshd
runs the real ``gatekeeper-authorized-keys`` as ``nobody`` from the generated
``sshd-config``; the guest account has no ``authorized_keys`` at all.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gksshd
import gktest
import pytest

from gatekeeper.login import authkeys
from gatekeeper.policy import cache as policycache

CACHE_DIR = "/var/cache/ssh-gatekeeper"

pytestmark = [pytest.mark.sshd, pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

AUTHORIZED_KEYS = gktest.GATEKEEPER.parent / "gatekeeper-authorized-keys"
DENIED_AT_AUTH = "Permission denied (publickey)"


@dataclass
class Identity:
    sshd: gksshd.Sshd
    policy: Path
    account: str
    bob: gksshd.Key
    carol: gksshd.Key
    stranger: gksshd.Key
    text: str

    def check(self) -> None:
        result = subprocess.run(
            # A policy outside /etc is written to the cache (and key index) only on
            # request: a plain `check PATH` is a side-effect-free validator.
            [str(gktest.GATEKEEPERCTL), "check", "--cache-dir", CACHE_DIR, str(self.policy)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def edit(self, text: str) -> None:
        gktest.write_root_file(self.policy, text)


def _policy(
    journal_socket: str, host, owner: str, account: str, bob: gksshd.Key, carol: gksshd.Key
) -> str:
    return f"""version = 1

[audit]
journal_socket = "{journal_socket}"

[identity]
source = "authorized-keys-command"

[people.bob]
keys = ["{bob.public}"]

[people.carol]
keys = ["{carol.fingerprint}"]

[sessions.shared]
socket = "{host.socket}"
owner = "{owner}"
target = "shared"

[[grant]]
users = ["{account}"]
people = ["bob"]
session = "shared"
mode = "read-only"
default = true

[[grant]]
users = ["{account}"]
people = ["carol"]
session = "shared"
mode = "read-write"
default = true
"""


@pytest.fixture(scope="module")
def identity(deployment, journal) -> Iterator[Identity]:
    gktest.require(AUTHORIZED_KEYS.exists(), f"{AUTHORIZED_KEYS} (run scripts/bootstrap)")
    site, account = deployment.site, deployment.accounts.pairer.name
    keys = {name: site.key(f"id-{name}") for name in ("bob", "carol", "stranger")}
    owner = deployment.accounts.host.name
    text = _policy(journal.socket, deployment.host, owner, account, keys["bob"], keys["carol"])
    policy = gktest.write_root_file(site.root / "identity.toml", text)
    made = Identity(
        sshd=None,  # type: ignore[arg-type]  # set below, once the cache exists
        policy=policy,
        account=account,
        bob=keys["bob"],
        carol=keys["carol"],
        stranger=keys["stranger"],
        text=text,
    )
    made.check()
    generated = subprocess.run(
        [
            str(gktest.GATEKEEPERCTL),
            "sshd-config",
            "--policy",
            str(policy),
            "--gatekeeper",
            str(gktest.GATEKEEPER),
            "--authorized-keys",
            str(AUTHORIZED_KEYS),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    made.sshd = site.start("identity", generated)
    try:
        yield made
    finally:
        Path(policycache.cache_file(str(policy))).unlink(missing_ok=True)
        Path(authkeys.index_file(str(policy))).unlink(missing_ok=True)


def _count(journal, user: str) -> int:
    return len(journal.records(f"GATEKEEPER_USER={user}"))


def _clients(host) -> list[str]:
    out = host.tmux.out("list-clients", "-F", "#{client_user} #{client_readonly}")
    return sorted(out.splitlines())


def test_sshd_runs_the_command_for_guests_only(identity, deployment) -> None:
    site = deployment.site
    guest = site.effective(identity.sshd, identity.account)
    assert guest["authorizedkeysfile"] == ["none"]
    assert guest["authorizedkeyscommand"] == [
        f"{AUTHORIZED_KEYS} --policy {identity.policy} %u %t %k %f"
    ]
    assert guest["authorizedkeyscommanduser"] == ["nobody"]
    assert guest["permituserenvironment"] == ["GATEKEEPER_PERSON"]
    host = site.effective(identity.sshd, deployment.accounts.host.name)
    assert host["forcecommand"] == ["none"]
    assert host["authorizedkeyscommand"] == ["none"]
    assert host["authorizedkeysfile"] != ["none"]
    # The host's own `ssh host id` runs its own shell, not the gatekeeper (§30).
    own = site.key("host-own")
    site.authorize(deployment.accounts.host.name, own)
    login = identity.sshd.ssh(own, deployment.accounts.host.name, command=("id", "-un"))
    assert login.returncode == 0, login.stderr
    assert login.stdout.decode().strip() == deployment.accounts.host.name


def test_two_people_on_one_account_get_their_own_modes(identity, deployment, journal, term):
    host = deployment.host
    for key, person, mode, flag in (
        (identity.bob, "bob", "read-only", "1"),
        (identity.carol, "carol", "read-write", "0"),
    ):
        before = _count(journal, identity.account)
        pane = term.run(identity.sshd.ssh_argv(key, identity.account, "-tt"))
        term.tmux.wait_screen(pane, host.marker, timeout=30)
        assert _clients(host) == [f"{identity.account} {flag}"], person
        raw = journal.wait_for(f"GATEKEEPER_USER={identity.account}", count=before + 1, timeout=30)
        record = json.loads(raw[-1]["MESSAGE"])
        assert (record["person"], record["person_source"], record["mode"]) == (
            person,
            "authorized-keys-command",
            mode,
        )
        assert record["key_fingerprint"] == key.fingerprint
        term.close(pane)
        gktest.wait_until(lambda: not _clients(host), 30, "the guest to leave")


def test_the_client_cannot_claim_another_person(identity) -> None:
    """``SetEnv GATEKEEPER_PERSON=carol`` from bob's client: still bob (AcceptEnv, §29)."""
    who = identity.sshd.ssh(
        identity.bob,
        identity.account,
        "-o",
        "SetEnv=GATEKEEPER_PERSON=carol",
        command=("whoami", "--json"),
    )
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["person"] == "bob"


def test_an_unknown_key_never_reaches_the_gatekeeper(identity, journal) -> None:
    before = _count(journal, identity.account)
    refused = identity.sshd.ssh(identity.stranger, identity.account, command=("whoami",))
    assert refused.returncode == 255
    assert DENIED_AT_AUTH in refused.stderr.decode()
    # CONTROL: a known key on the same sshd gets through and leaves a record.
    allowed = identity.sshd.ssh(identity.bob, identity.account, command=("whoami",))
    assert allowed.returncode == 0, allowed.stderr
    journal.wait_for(f"GATEKEEPER_USER={identity.account}", count=before + 1, timeout=30)
    assert _count(journal, identity.account) == before + 1  # the stranger left none


def test_revocation_stops_the_next_login_at_authentication(identity) -> None:
    def bob_logs_in() -> subprocess.CompletedProcess[bytes]:
        done: subprocess.CompletedProcess[bytes] = identity.sshd.ssh(
            identity.bob, identity.account, command=("whoami",)
        )
        return done

    assert bob_logs_in().returncode == 0
    without_bob = identity.text.replace(
        f'[people.bob]\nkeys = ["{identity.bob.public}"]\n', ""
    ).replace('people = ["bob"]', 'people = ["carol"]')
    assert without_bob != identity.text
    try:
        # Edited but not checked: the cache no longer matches, every key is refused.
        identity.edit(without_bob)
        stale = bob_logs_in()
        assert stale.returncode == 255
        assert DENIED_AT_AUTH in stale.stderr.decode()
        identity.check()
        revoked = bob_logs_in()
        assert revoked.returncode == 255
        assert DENIED_AT_AUTH in revoked.stderr.decode()
        # carol, still in the policy, logs in as before.
        carol = identity.sshd.ssh(identity.carol, identity.account, command=("whoami",))
        assert carol.returncode == 0, carol.stderr
    finally:
        identity.edit(identity.text)
        identity.check()
    assert bob_logs_in().returncode == 0


def test_the_command_itself_as_sshd_runs_it(identity) -> None:
    """As ``nobody``: a known key gets its line, an unknown one nothing, both exit 0."""

    def run(key: gksshd.Key) -> subprocess.CompletedProcess[str]:
        key_type, blob = key.public.split(" ")[:2]
        return subprocess.run(
            [str(AUTHORIZED_KEYS), "--policy", str(identity.policy), identity.account, key_type,
             blob, key.fingerprint],
            capture_output=True,
            text=True,
            check=False,
            user="nobody",
            group="nogroup",
            extra_groups=[],
            env={},
            cwd="/",
        )  # fmt: skip

    known = run(identity.bob)
    assert known.returncode == 0, known.stderr
    key_type, blob = identity.bob.public.split(" ")[:2]
    assert known.stdout == (f'restrict,pty,environment="GATEKEEPER_PERSON=bob" {key_type} {blob}\n')
    unknown = run(identity.stranger)
    assert (unknown.returncode, unknown.stdout) == (0, "")
    assert os.stat(AUTHORIZED_KEYS).st_uid == 0


def test_doctor_verifies_the_keys_command_end_to_end(identity) -> None:
    def doctor() -> dict[str, dict[str, Any]]:
        result = subprocess.run(
            [str(gktest.GATEKEEPERCTL), "doctor", "--policy", str(identity.policy),
             "--sshd-config", str(identity.sshd.config), "--gatekeeper", str(gktest.GATEKEEPER),
             "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        checks = json.loads(result.stdout)["checks"]
        return {c["check"]: c for c in checks if c["subject"] == identity.account}

    found = doctor()
    for name in (
        "sshd.authorizedkeysfile",
        "sshd.authorizedkeyscommand",
        "sshd.authorizedkeyscommanduser",
        "sshd.permituserenvironment",
        "keys_command.unknown",
        "keys_command.known",
    ):
        assert found[name]["status"] == "ok", found[name]
    assert found["keys_command.known"]["message"] == "bob's key is answered"
    # CONTROL: a policy edited without `check` - doctor sees the command refuse bob.
    try:
        identity.edit(identity.text + "\n")
        stale = doctor()["keys_command.known"]
        assert stale["status"] == "warn"
        assert stale["fix"] == f"gatekeeperctl check --cache-dir {CACHE_DIR} {identity.policy}"
    finally:
        identity.edit(identity.text)
        identity.check()
