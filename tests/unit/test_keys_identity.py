"""Keys in the policy, the authorized-keys command's answer, the sshd-vouched person."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper.login import authkeys, decide
from gatekeeper.login import request as rq
from gatekeeper.policy import cache as policycache
from gatekeeper.policy import keyindex, keys, model
from gatekeeper.policy import loader as policy

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A real ed25519 public key line and ssh-keygen's own fingerprint of it."""
    path = tmp_path_factory.mktemp("k") / "id"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@laptop", "-f", str(path)],
        check=True,
    )
    line = Path(f"{path}.pub").read_text().strip()
    out = subprocess.run(
        ["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True
    ).stdout
    return line, out.split()[1]


def test_a_key_line_compiles_to_ssh_keygens_fingerprint(keypair: tuple[str, str]) -> None:
    line, fingerprint = keypair
    assert keys.parse_entry(line) == fingerprint
    assert keys.parse_entry(fingerprint) == fingerprint
    raw = f'version = 1\n[people.bob]\nkeys = ["{line}"]\n'.encode()
    _, compiled = policy.parse(raw)
    assert compiled.people == {"bob": frozenset({fingerprint})}
    assert compiled.identity_source == "ssh-user-auth"


def _policy(fingerprint: str, *grants: model.Grant, source: str = "authorized-keys-command"):
    return model.Policy(
        identity_source=source,  # type: ignore[arg-type]
        people={"bob": frozenset({fingerprint}), "carol": frozenset({"SHA256:" + "C" * 43})},
        sessions={"shared": model.Session("shared", "/run/x/sock", "alice", "shared")},
        grants=grants,
        sha256="0" * 64,
        path="/etc/p.toml",
    )


def _answer(keypair: tuple[str, str], pol: model.Policy, user: str = "root"):
    """What the command answers for this key, from the index check would write."""
    body = keyindex.render(pol).partition("\n")[2]
    return authkeys.answer(body, user, keypair[1], NOW.timestamp())


def test_the_command_and_the_validator_agree_on_fingerprints(keypair: tuple[str, str]) -> None:
    key_type, blob = keypair[0].split(" ")[:2]
    assert authkeys.fingerprint(key_type, blob) == keypair[1]
    assert authkeys.fingerprint("ssh-rsa", blob) is None  # an ed25519 blob labelled rsa
    assert authkeys.fingerprint(key_type, blob[:-4] + "!!!!") is None
    assert authkeys.DEFAULT_DIR == policycache.DEFAULT_DIR


def test_the_answer_carries_the_person_and_the_latest_expiry(keypair: tuple[str, str]) -> None:
    fpr = keypair[1]
    soon = model.Grant(
        0,
        frozenset({"root"}),
        people=frozenset({"bob"}),
        session="shared",
        expires=datetime(2026, 7, 1, tzinfo=UTC),
    )
    later = model.Grant(1, frozenset({"root"}), people=frozenset({"bob"}), session="shared",
                        expires=datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))  # fmt: skip
    assert _answer(keypair, _policy(fpr, soon, later)) == (
        "bob",
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp(),
    )
    forever = model.Grant(2, frozenset({"root"}), session="shared")
    assert _answer(keypair, _policy(fpr, soon, forever)) == ("bob", None)


def test_no_answer_without_a_grant_valid_now_or_later(keypair: tuple[str, str]) -> None:
    fpr = keypair[1]
    past = model.Grant(0, frozenset({"root"}), people=frozenset({"bob"}), session="shared",
                       expires=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    assert _answer(keypair, _policy(fpr, past)) is None
    # carol's grant on the account is not bob's (sshd vouches for the person).
    carols = model.Grant(1, frozenset({"root"}), people=frozenset({"carol"}), session="shared")
    assert _answer(keypair, _policy(fpr, carols)) is None
    # Another account's grant is not this account's.
    other = model.Grant(2, frozenset({"nobody"}), people=frozenset({"bob"}), session="shared")
    assert _answer(keypair, _policy(fpr, other)) is None
    # A group of the account counts (root is in group root).
    group = model.Grant(3, groups=frozenset({"root"}), people=frozenset({"bob"}), session="shared")
    assert _answer(keypair, _policy(fpr, group)) == ("bob", None)
    # CONTROL: the same grant for this account answers; a future one does too.
    mine = model.Grant(4, frozenset({"root"}), people=frozenset({"bob"}), session="shared",
                       not_before=datetime(2027, 1, 1, tzinfo=UTC))  # fmt: skip
    assert _answer(keypair, _policy(fpr, mine)) == ("bob", None)
    # An unknown key: nothing.
    assert _answer(keypair, _policy("SHA256:" + "D" * 43, mine)) is None


def test_a_missing_index_denies_and_bad_arguments_are_errors(
    tmp_path: Path, keypair: tuple[str, str]
) -> None:
    key_type, blob = keypair[0].split(" ")[:2]
    assert authkeys.run(["root", key_type, blob], cache_dir=str(tmp_path)) == (0, "")
    assert authkeys.run(["root"], cache_dir=str(tmp_path)) == (1, "")
    assert authkeys.run(["--policy", "relative", "u", "t", "k"], cache_dir=str(tmp_path))[0] == 1
    # sshd's %f must be the fingerprint of its %k.
    wrong = ["root", key_type, blob, "SHA256:" + "E" * 43]
    assert authkeys.run(wrong, cache_dir=str(tmp_path)) == (0, "")


def _connection(fingerprints: tuple[str, ...], person: str | None) -> model.Connection:
    return model.Connection(
        user="pair", uid=1000, key_fingerprints=fingerprints, sshd_person=person, has_tty=True
    )


def test_the_sshd_person_must_agree_with_ssh_user_auth(keypair: tuple[str, str]) -> None:
    fpr = keypair[1]
    pol = _policy(
        fpr,
        model.Grant(0, frozenset({"pair"}), people=frozenset({"bob"}), session="shared"),
        model.Grant(1, frozenset({"pair"}), people=frozenset({"carol"}), session="shared",
                    mode="read-write"),
    )  # fmt: skip
    attach = rq.Attach(session="shared")
    ok = decide.decide(_connection((fpr,), "bob"), attach, pol, NOW)
    assert isinstance(ok, decide.AttachSession)
    assert (ok.mode, ok.identity.person, ok.identity.source) == (
        "read-only",
        "bob",
        "authorized-keys-command",
    )
    # bob's key, but sshd says carol: the SSH_USER_AUTH file and sshd disagree.
    mixed = decide.decide(_connection((fpr,), "carol"), attach, pol, NOW)
    assert isinstance(mixed, decide.Deny)
    assert mixed.reason == "identity_mismatch"
    # No GATEKEEPER_PERSON at all under the command: deny, do not guess from the file.
    absent = decide.decide(_connection((fpr,), None), attach, pol, NOW)
    assert isinstance(absent, decide.Deny)
    assert absent.reason == "identity_mismatch"
    # CONTROL: the default source still reads the person from the file (0.1 behaviour).
    old = decide.decide(
        _connection((fpr,), "carol"), attach, _policy(fpr, *pol.grants, source="ssh-user-auth"), NOW
    )
    assert isinstance(old, decide.AttachSession)
    assert old.identity.person == "bob"
    assert old.identity.source == "ssh-user-auth"
