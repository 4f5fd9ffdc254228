"""Policy validation (SPEC §3): good fixtures compile, bad ones fail with exact text."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import NamedTuple

import gkunit
import pytest

from gatekeeper.policy import loader as policy
from gatekeeper.policy import model

SESSION = '[sessions.s]\nsocket = "/var/tmux/s.sock"\nowner = "alice"\ntarget = "s"\n'
PROGRAM = '[programs.e]\nargv = ["/usr/bin/vim", "-Z", "--", "/my_project"]\n'


def grant(*lines: str) -> str:
    return "[[grant]]\n" + "".join(line + "\n" for line in lines)


GOOD = f"""\
version = 1

[audit]
sink = "file"
identifier = "gk-test"
journal_socket = "/run/systemd/journal.test/socket"
file = "/var/log/gatekeeper/test.jsonl"
on_failure = "allow"

[tmux]
binary = "/usr/local/bin/tmux"

[people.bob]
keys = ["SHA256:{"A" * 43}"]

{SESSION}
{PROGRAM}
[[grant]]
users = ["pair"]
groups = ["tmux_group"]
people = ["bob"]
from = ["127.0.0.0/8", "2001:db8::/32"]
session = "s"
mode = "read-write"
default = true
not_before = 2026-01-01T00:00:00Z
expires = 2026-12-31T23:59:59+02:00

[[grant]]
users = ["pair"]
program = "e"
"""


def test_good_policy_compiles_every_key() -> None:
    _, compiled = policy.parse(GOOD.encode(), "good.toml")
    assert compiled.audit == model.AuditConfig(
        sink="file",
        identifier="gk-test",
        journal_socket="/run/systemd/journal.test/socket",
        file="/var/log/gatekeeper/test.jsonl",
        on_failure="allow",
    )
    assert compiled.tmux_binary == "/usr/local/bin/tmux"
    assert compiled.people == {"bob": frozenset({"SHA256:" + "A" * 43})}
    assert compiled.sessions == {"s": model.Session("s", "/var/tmux/s.sock", "alice", "s")}
    assert compiled.programs == {
        "e": model.Program("e", ("/usr/bin/vim", "-Z", "--", "/my_project"))
    }
    first, second = compiled.grants
    assert first.label == "grant[0]"
    assert first.users == frozenset({"pair"})
    assert first.groups == frozenset({"tmux_group"})
    assert first.people == frozenset({"bob"})
    assert first.from_ == (ip_network("127.0.0.0/8"), ip_network("2001:db8::/32"))
    assert (first.session, first.program, first.mode, first.default) == (
        "s",
        None,
        "read-write",
        True,
    )
    assert first.not_before == datetime(2026, 1, 1, tzinfo=UTC)
    assert first.expires == datetime(2026, 12, 31, 21, 59, 59, tzinfo=UTC)
    assert (second.program, second.session, second.mode, second.default) == (
        "e",
        None,
        "read-only",
        False,
    )
    assert compiled.path == "good.toml"
    assert len(compiled.sha256) == 64


def test_defaults_of_a_minimal_policy() -> None:
    _, compiled = policy.parse(b"version = 1\n")
    assert compiled.audit == model.AuditConfig()
    assert compiled.audit.sink == "journald"
    assert compiled.audit.on_failure == "deny"
    assert compiled.tmux_binary == "/usr/bin/tmux"
    assert compiled.grants == ()


def test_the_seed_policy_is_valid() -> None:
    _, compiled = policy.parse((gkunit.REPO / "etc" / "gatekeeper.toml").read_bytes())
    assert set(compiled.sessions) == {"shared"}
    assert compiled.grants[0].mode == "read-only"
    assert compiled.grants[0].default
    assert compiled.programs["editor"].argv[:2] == ("/usr/bin/vim", "-Z")


def test_sha256_is_of_the_file_bytes() -> None:
    import hashlib  # noqa: PLC0415 - only this test hashes

    raw = b"version = 1\n# a comment changes the hash\n"
    assert policy.parse(raw)[1].sha256 == hashlib.sha256(raw).hexdigest()


class Bad(NamedTuple):
    id: str
    toml: str
    errors: list[str]  # exact ``path: message`` lines after the file name


BAD = [
    Bad(
        "typo-form-for-from",
        SESSION + grant('users = ["pair"]', 'session = "s"', 'form = ["10.0.0.0/8"]'),
        ["grant[0].form: unknown key"],
    ),
    Bad("unknown-top-level-key", "grants = []\n", ["grants: unknown key"]),
    Bad("unknown-audit-key", '[audit]\nsocket = "/x"\n', ["audit.socket: unknown key"]),
    Bad(
        "users-not-a-list",
        SESSION + grant('users = "pair"', 'session = "s"'),
        ["grant[0].users: Input should be a valid list"],
    ),
    Bad(
        "default-as-string",
        SESSION + grant('users = ["pair"]', 'session = "s"', 'default = "yes"'),
        ["grant[0].default: Input should be a valid boolean"],
    ),
    Bad(
        "expires-as-string",
        SESSION + grant('users = ["pair"]', 'session = "s"', 'expires = "2026-12-31T23:59:59Z"'),
        ["grant[0].expires: Input should be a valid datetime"],
    ),
    Bad(
        "naive-expires",
        SESSION + grant('users = ["pair"]', 'session = "s"', "expires = 2026-12-31T23:59:59"),
        ["grant[0].expires: must include a timezone, e.g. 2026-12-31T23:59:59Z"],
    ),
    Bad(
        "naive-not-before",
        SESSION + grant('users = ["pair"]', 'session = "s"', "not_before = 2026-12-01T09:00:00"),
        ["grant[0].not_before: must include a timezone, e.g. 2026-12-31T23:59:59Z"],
    ),
    Bad(
        "not-before-after-expires",
        SESSION
        + grant(
            'users = ["pair"]',
            'session = "s"',
            "not_before = 2026-12-31T00:00:00Z",
            "expires = 2026-01-01T00:00:00Z",
        ),
        ["grant[0]: not_before must be earlier than expires"],
    ),
    Bad(
        "cidr-host-bits",
        SESSION + grant('users = ["pair"]', 'session = "s"', 'from = ["10.0.0.1/8"]'),
        ["grant[0].from: '10.0.0.1/8' is not an address range: 10.0.0.1/8 has host bits set"],
    ),
    Bad(
        "cidr-nonsense",
        SESSION + grant('users = ["pair"]', 'session = "s"', 'from = ["localhost"]'),
        [
            (
                "grant[0].from: 'localhost' is not an address range: "
                "'localhost' does not appear to be an IPv4 or IPv6 network"
            )
        ],
    ),
    Bad(
        "unknown-session",
        SESSION + grant('users = ["pair"]', 'session = "nope"'),
        ["grant[0].session: unknown session 'nope'"],
    ),
    Bad(
        "unknown-program",
        grant('users = ["pair"]', 'program = "nope"'),
        ["grant[0].program: unknown program 'nope'"],
    ),
    Bad(
        "unknown-person",
        SESSION + grant('people = ["carol"]', 'session = "s"'),
        ["grant[0].people: unknown person 'carol'"],
    ),
    Bad(
        "both-session-and-program",
        SESSION + PROGRAM + grant('users = ["pair"]', 'session = "s"', 'program = "e"'),
        ["grant[0]: needs exactly one of session, program"],
    ),
    Bad(
        "neither-session-nor-program",
        grant('users = ["pair"]'),
        ["grant[0]: needs exactly one of session, program"],
    ),
    Bad(
        "nobody",
        SESSION + grant('session = "s"'),
        ["grant[0]: needs at least one of users, groups, people"],
    ),
    Bad(
        "mode-on-program",
        PROGRAM + grant('users = ["pair"]', 'program = "e"', 'mode = "read-only"'),
        ["grant[0]: mode applies to sessions only"],
    ),
    Bad(
        "mode-typo",
        SESSION + grant('users = ["pair"]', 'session = "s"', 'mode = "rw"'),
        ["grant[0].mode: Input should be 'read-only' or 'read-write'"],
    ),
    Bad(
        "program-relative-argv0",
        '[programs.e]\nargv = ["vim", "-Z"]\n',
        ["programs.e.argv: argv[0] must be an absolute path"],
    ),
    Bad(
        "program-dotdot-argv0",
        '[programs.e]\nargv = ["/usr/bin/../bin/vim"]\n',
        ["programs.e.argv: argv[0] must be a normalised path (no '.', '..' or '//')"],
    ),
    Bad(
        "program-empty-argv",
        "[programs.e]\nargv = []\n",
        ["programs.e.argv: List should have at least 1 item after validation, not 0"],
    ),
    Bad("program-missing-argv", "[programs.e]\n", ["programs.e.argv: required key is missing"]),
    Bad(
        "session-missing-owner",
        '[sessions.s]\nsocket = "/var/tmux/s.sock"\ntarget = "s"\n',
        ["sessions.s.owner: required key is missing"],
    ),
    Bad(
        "session-relative-socket",
        '[sessions.s]\nsocket = "tmux.sock"\nowner = "alice"\ntarget = "s"\n',
        ["sessions.s.socket: must be an absolute path"],
    ),
    Bad(
        "session-target-with-colon",
        '[sessions.s]\nsocket = "/var/tmux/s"\nowner = "alice"\ntarget = "s:0"\n',
        ["sessions.s.target: String should match pattern '^[A-Za-z0-9_-]{1,64}$'"],
    ),
    Bad(
        "dotted-session-name",
        '[sessions."a.b"]\nsocket = "/var/tmux/s"\nowner = "alice"\ntarget = "s"\n',
        ["sessions.\"a.b\": invalid name: String should match pattern '^[A-Za-z0-9_-]{1,64}$'"],
    ),
    Bad(
        "newline-in-session-name",
        '[sessions."a\\nb"]\nsocket = "/var/tmux/s"\nowner = "alice"\ntarget = "s"\n',
        ["sessions.\"a\\nb\": invalid name: String should match pattern '^[A-Za-z0-9_-]{1,64}$'"],
    ),
    Bad(
        "short-fingerprint",
        '[people.bob]\nkeys = ["SHA256:abc"]\n',
        ["people.bob.keys[0]: a fingerprint is SHA256: and 43 base64 characters (ssh-keygen -lf)"],
    ),
    Bad(
        "key-line-bad-base64",
        '[people.bob]\nkeys = ["SHA256:' + "A" * 43 + '", "ssh-ed25519 AAAA!!!! bob"]\n',
        ["people.bob.keys[1]: not a valid ssh-ed25519 key (bad base64 or a blob of another type)"],
    ),
    Bad(
        "key-line-type-mismatch",
        # an ssh-rsa blob labelled ssh-ed25519
        '[people.bob]\nkeys = ["ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"]\n',
        ["people.bob.keys[0]: not a valid ssh-ed25519 key (bad base64 or a blob of another type)"],
    ),
    Bad(
        "key-line-with-options",
        '[people.bob]\nkeys = ["restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"]\n',
        [
            (
                "people.bob.keys[0]: unknown key type 'restrict' "
                "(options such as restrict are not allowed here)"
            )
        ],
    ),
    Bad(
        "shared-key",
        f'[people.bob]\nkeys = ["SHA256:{"B" * 43}"]\n[people.eve]\nkeys = ["SHA256:{"B" * 43}"]\n',
        [f"people.eve.keys[0]: key SHA256:{'B' * 43} also belongs to 'bob'"],
    ),
    Bad(
        "audit-sink",
        '[audit]\nsink = "syslog"\n',
        ["audit.sink: Input should be 'journald' or 'file'"],
    ),
    Bad("tmux-relative", '[tmux]\nbinary = "tmux"\n', ["tmux.binary: must be an absolute path"]),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_policy_names_the_key_and_the_problem(case: Bad) -> None:
    with pytest.raises(policy.PolicyError) as caught:
        policy.parse(("version = 1\n" + case.toml).encode(), "/etc/p.toml")
    assert caught.value.kind == "invalid"
    assert caught.value.render().splitlines() == [f"/etc/p.toml: {line}" for line in case.errors]


class Whole(NamedTuple):
    id: str
    raw: bytes
    errors: list[str]


WHOLE = [
    Whole("no-version", b"", ["version: required key is missing"]),
    Whole("version-2", b"version = 2\n", ["version: Input should be 1"]),
    Whole("version-string", b'version = "1"\n', ["version: Input should be 1"]),
    Whole("version-bool", b"version = true\n", ["version: Input should be 1"]),
    Whole("version-float", b"version = 1.0\n", ["version: Input should be 1"]),
    Whole("toml-syntax", b"version = \n", ["TOML syntax: Invalid value (at line 1, column 11)"]),
    Whole(
        "not-utf8",
        b"version = 1\n# \xff\n",
        ["not UTF-8: 'utf-8' codec can't decode byte 0xff in position 14: invalid start byte"],
    ),
]


@pytest.mark.parametrize("case", WHOLE, ids=[c.id for c in WHOLE])
def test_bad_document(case: Whole) -> None:
    with pytest.raises(policy.PolicyError) as caught:
        policy.parse(case.raw, "P")
    assert caught.value.kind == "invalid"
    assert caught.value.render().splitlines() == [f"P: {line}" for line in case.errors]


def test_every_error_is_reported_at_once() -> None:
    raw = b'version = 1\n[[grant]]\nform = []\n[[grant]]\nusers = "x"\n'
    with pytest.raises(policy.PolicyError) as caught:
        policy.parse(raw, "P")
    paths = [problem.path for problem in caught.value.problems]
    assert "grant[0].form" in paths
    assert "grant[1].users" in paths


def test_a_valid_audit_table_survives_an_invalid_policy() -> None:
    """So the denial of a broken policy is still recorded where the admin looks."""
    raw = b'version = 1\n[audit]\nsink = "file"\nfile = "/var/log/x.jsonl"\n[[grant]]\nform = []\n'
    with pytest.raises(policy.PolicyError) as caught:
        policy.parse(raw, "P")
    assert caught.value.audit == model.AuditConfig(sink="file", file="/var/log/x.jsonl")


def test_key_path() -> None:
    assert policy.key_path(("grant", 0, "form")) == "grant[0].form"
    assert policy.key_path(("people", "bob", "keys", 2)) == "people.bob.keys[2]"
    assert policy.key_path(("sessions", "a.b", "[key]")) == 'sessions."a.b"'
    assert policy.key_path(("sessions", "x\x1b]0;t\x07")) == 'sessions."x\\u001b]0;t\\u0007"'


# ------------------------------------------------------------------ loading a file


@pytest.fixture
def policy_dir() -> Iterator[gkunit.PolicyDir]:
    yield from gkunit.policy_dir()


def test_load_a_safe_file(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write(SESSION + grant('users = ["pair"]', 'session = "s"'))
    loaded = policy.load(str(path))
    assert loaded.path == str(path)
    assert loaded.grants[0].session == "s"


class Unsafe(NamedTuple):
    id: str
    mode: int
    uid: int
    message: str  # {path} is the policy's real path


UNSAFE = [
    Unsafe("group-writable", 0o664, 0, "unsafe: {path} is writable by group or others"),
    Unsafe("world-writable", 0o646, 0, "unsafe: {path} is writable by group or others"),
    Unsafe("owned-by-nobody", 0o644, 65534, "unsafe: {path} is owned by uid 65534, not root"),
]


@pytest.mark.parametrize("case", UNSAFE, ids=[c.id for c in UNSAFE])
def test_unsafe_file_is_refused(policy_dir: gkunit.PolicyDir, case: Unsafe) -> None:
    path = policy_dir.write("", mode=case.mode)
    os.chown(path, case.uid, 0)
    with pytest.raises(policy.PolicyError) as caught:
        policy.load(str(path))
    assert caught.value.kind == "unsafe"
    assert caught.value.render() == f"{path}: " + case.message.format(path=path)
    assert caught.value.audit is None  # an untrusted file's [audit] is not believed


def test_unsafe_parent_directory_is_refused(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write("")
    policy_dir.path.chmod(0o775)
    with pytest.raises(policy.PolicyError) as caught:
        policy.load(str(path))
    assert caught.value.kind == "unsafe"
    assert caught.value.render() == (
        f"{path}: unsafe: directory {policy_dir.path} is writable by group or others"
    )


def test_parent_directory_owned_by_someone_else_is_refused(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write("")
    os.chown(policy_dir.path, 65534, 0)
    with pytest.raises(policy.PolicyError) as caught:
        policy.load(str(path))
    assert caught.value.kind == "unsafe"
    assert f"directory {policy_dir.path} is owned by uid 65534" in caught.value.render()


def test_missing_file(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.path / "nope.toml"
    with pytest.raises(policy.PolicyError) as caught:
        policy.load(str(path))
    assert caught.value.kind == "missing"
    assert caught.value.render() == f"{path}: no such file"


def test_missing_directory(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.path / "nodir" / "p.toml"
    with pytest.raises(policy.PolicyError) as caught:
        policy.load(str(path))
    assert caught.value.kind == "missing"


def test_invalid_file_is_invalid_not_unsafe(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write(grant('users = ["pair"]', 'session = "s"', 'form = ["::/0"]'))
    with pytest.raises(policy.PolicyError) as caught:
        policy.load(str(path))
    assert caught.value.kind == "invalid"
    assert f"{path}: grant[0].form: unknown key" in caught.value.render().splitlines()


def test_symlink_to_a_safe_file_is_read_through(policy_dir: gkunit.PolicyDir) -> None:
    target = policy_dir.write("")
    link = Path(policy_dir.path / "link.toml")
    link.symlink_to(target)
    assert policy.load(str(link)).sha256 == policy.load(str(target)).sha256


def test_schema_names_the_public_keys() -> None:
    schema = policy.json_schema()
    grant_props = schema["$defs"]["GrantModel"]["properties"]
    assert "from" in grant_props
    assert "from_" not in grant_props
    assert schema["$defs"]["GrantModel"]["additionalProperties"] is False
    assert schema["required"] == ["version"]
