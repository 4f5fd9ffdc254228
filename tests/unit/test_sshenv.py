"""Reading the connection once at the edge (SPEC §4; SECURITY.md §9, §12, §14)."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import gkunit
import pytest

from gatekeeper.login import sshenv

BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + bytes(range(36))).decode()
FPR = "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(BLOB)).digest()).decode().rstrip(
    "="
)


@pytest.fixture
def scratch() -> Iterator[Path]:
    for directory in gkunit.policy_dir():
        yield directory.path


def test_identity_comes_from_the_kernel_not_the_environment() -> None:
    env = {b"USER": b"alice", b"LOGNAME": b"alice", b"HOME": b"/home/alice"}
    connection = sshenv.read(env, stdin_is_tty=False)
    me = pwd.getpwuid(os.getuid())
    assert (connection.user, connection.uid, connection.home) == (me.pw_name, me.pw_uid, me.pw_dir)
    assert connection.gid == me.pw_gid


def test_fingerprint_matches_openssh() -> None:
    assert sshenv.fingerprint(BLOB) == FPR
    assert len(FPR) == len("SHA256:") + 43


def test_fingerprint_of_garbage_is_none() -> None:
    assert sshenv.fingerprint("not base64!") is None


def test_auth_info_lines() -> None:
    text = f"password\npublickey ssh-ed25519 {BLOB}\npublickey ssh-rsa !!!\nkeyboard-interactive\n"
    assert sshenv.fingerprints_from_auth_info(text) == (FPR,)


def test_reads_the_ssh_user_auth_file(scratch: Path) -> None:
    auth = scratch / "sshauth"
    auth.write_text(f"publickey ssh-ed25519 {BLOB}\n")
    connection = sshenv.read({b"SSH_USER_AUTH": str(auth).encode()}, stdin_is_tty=False)
    assert connection.key_fingerprints == (FPR,)


def test_a_symlinked_or_special_auth_file_is_ignored(scratch: Path) -> None:
    real = scratch / "real"
    real.write_text(f"publickey ssh-ed25519 {BLOB}\n")
    (scratch / "link").symlink_to(real)
    os.mkfifo(scratch / "fifo")
    for name in (b"link", b"fifo", b"missing"):
        path = str(scratch).encode() + b"/" + name
        assert sshenv.read({b"SSH_USER_AUTH": path}, stdin_is_tty=False).key_fingerprints == ()


class Endpoint(NamedTuple):
    id: str
    raw: bytes | None
    expected: tuple[str | None, int | None, str | None, int | None]


NONE4 = (None, None, None, None)
ENDPOINTS = [
    Endpoint("ipv4", b"192.0.2.7 50022 192.0.2.1 22", ("192.0.2.7", 50022, "192.0.2.1", 22)),
    Endpoint(
        "ipv6", b"2001:db8::7 50022 2001:db8::1 22", ("2001:db8::7", 50022, "2001:db8::1", 22)
    ),
    Endpoint("unset", None, NONE4),
    Endpoint("three-words", b"192.0.2.7 50022 192.0.2.1", NONE4),
    Endpoint("port-not-a-number", b"192.0.2.7 x 192.0.2.1 22", NONE4),
    Endpoint("unicode-digit-port", "192.0.2.7 \u0665 192.0.2.1 22".encode(), NONE4),
]


@pytest.mark.parametrize("case", ENDPOINTS, ids=[c.id for c in ENDPOINTS])
def test_ssh_connection(case: Endpoint) -> None:
    env = {} if case.raw is None else {b"SSH_CONNECTION": case.raw}
    connection = sshenv.read(env, stdin_is_tty=False)
    assert (
        connection.client_addr,
        connection.client_port,
        connection.server_addr,
        connection.server_port,
    ) == case.expected


class Tty(NamedTuple):
    id: str
    ssh_tty: bytes | None
    stdin_is_tty: bool
    has_tty: bool


TTYS = [
    Tty("pty", b"/dev/pts/3", stdin_is_tty=True, has_tty=True),
    Tty("no-pty", None, stdin_is_tty=False, has_tty=False),
    Tty("ssh-tty-but-stdin-redirected", b"/dev/pts/3", stdin_is_tty=False, has_tty=False),
    Tty("stdin-tty-without-ssh-tty", None, stdin_is_tty=True, has_tty=False),
]


@pytest.mark.parametrize("case", TTYS, ids=[c.id for c in TTYS])
def test_terminal(case: Tty) -> None:
    env = {} if case.ssh_tty is None else {b"SSH_TTY": case.ssh_tty}
    connection = sshenv.read(env, stdin_is_tty=case.stdin_is_tty)
    assert connection.has_tty is case.has_tty


def test_original_command_is_kept_as_raw_bytes() -> None:
    raw = b"attach \xff\x1b\n"
    assert sshenv.read({b"SSH_ORIGINAL_COMMAND": raw}, stdin_is_tty=False).original_command == raw
    assert sshenv.read({}, stdin_is_tty=False).original_command is None


def test_term_is_read_undecoded_errors_survive() -> None:
    connection = sshenv.read({b"TERM": b"xterm\xff"}, stdin_is_tty=True)
    assert connection.term == "xterm\udcff"


def test_groups_come_from_the_group_database() -> None:
    import grp  # noqa: PLC0415

    connection = sshenv.read({}, stdin_is_tty=False)
    assert grp.getgrgid(os.getgid()).gr_name in connection.groups
