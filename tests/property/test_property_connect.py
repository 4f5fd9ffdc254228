"""``connect.run`` over arbitrary guest bytes (hypothesis): one record, never guest argv.

Each example is a whole connection minus the exec: a real root-owned policy
file, the audit record appended to a ``sink = "file"``.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
from collections.abc import Iterator

import gkunit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.login import entry as connect
from gatekeeper.login import messages
from gatekeeper.login.plan import ExecPlan

ME = pwd.getpwuid(os.getuid()).pw_name
BODY = f"""
[programs.hello]
argv = ["/bin/true", "--", "fixed"]

[programs.ghost]
argv = ["/nonexistent/ghost"]

[[grant]]
users = ["{ME}"]
program = "hello"
default = true

[[grant]]
users = ["{ME}"]
program = "ghost"
"""
POLICY_ARGVS = {("/bin/true", "--", "fixed")}
WORDS = [b"run", b"hello", b"ghost", b"list", b"--json", b"whoami", b"help", b"attach", b"\n"]
COMMANDS = st.one_of(
    st.none(),
    st.binary(max_size=1100),
    st.lists(st.sampled_from(WORDS), max_size=4).map(b" ".join),
)


@pytest.fixture(scope="module")
def policy_dir() -> Iterator[gkunit.PolicyDir]:
    for directory in gkunit.policy_dir():
        directory.write(BODY)
        yield directory


def count_records(directory: gkunit.PolicyDir) -> int:
    if not directory.audit_file.exists():
        return 0
    with directory.audit_file.open("rb") as handle:
        return sum(1 for _ in handle)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=COMMANDS, tty=st.booleans(), term=st.binary(max_size=70))
def test_any_command_one_record_no_guest_argv(
    policy_dir: gkunit.PolicyDir, raw: bytes | None, tty: bool, term: bytes
) -> None:
    before = count_records(policy_dir)
    environ = gkunit.environ(raw, TERM=term)
    if not tty:
        del environ[b"SSH_TTY"]
    result = connect.run(
        ["--policy", str(policy_dir.policy)], environ, stdin_is_tty=tty, now=gkunit.NOW
    )
    lines = policy_dir.audit_file.read_bytes().splitlines()
    assert len(lines) == before + 1
    record = json.loads(lines[-1])
    assert record["original_command_bytes"] == (0 if raw is None else len(raw))
    if isinstance(result, ExecPlan):
        assert result.argv in POLICY_ARGVS
        assert record["decision"] == "allow"
        assert record["argv"] == list(result.argv)
        return
    assert result.code == record["exit_code"]
    if result.code == 0:
        assert result.stderr == ""
        return
    assert result.stdout == ""
    ref = record["connection_id"]
    assert result.stderr in {
        messages.line(template, ref=ref)
        for template in (
            messages.DENIED,
            messages.BAD_REQUEST,
            messages.NEED_TTY,
            messages.UNAVAILABLE,
        )
    }
    assert result.code in {1, 64, 69}


ALLOWED_KEYS = {
    "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE_ID", "GATEKEEPER_EVENT",
    "GATEKEEPER_DECISION", "GATEKEEPER_USER", "GATEKEEPER_PERSON", "GATEKEEPER_CLIENT_ADDR",
    "GATEKEEPER_SESSION", "GATEKEEPER_PROGRAM", "GATEKEEPER_MODE", "GATEKEEPER_CONNECTION_ID",
}  # fmt: skip


@pytest.fixture(scope="module")
def journal_dir() -> Iterator[tuple[gkunit.PolicyDir, socket.socket]]:
    """The journald sink pointed at a plain datagram socket the test reads."""
    for directory in gkunit.policy_dir():
        path = str(directory.path / "journal.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(0)
            header = f'version = 1\n[audit]\njournal_socket = "{path}"\n'
            directory.write(header + BODY, header=False)
            yield directory, sock


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=COMMANDS)
def test_any_command_one_datagram_no_injected_field(
    journal_dir: tuple[gkunit.PolicyDir, socket.socket], raw: bytes | None
) -> None:
    directory, sock = journal_dir
    connect.run(
        ["--policy", str(directory.policy)], gkunit.environ(raw), stdin_is_tty=True, now=gkunit.NOW
    )
    fields = gkunit.decode_datagram(sock.recv(1 << 20))
    with pytest.raises(BlockingIOError):
        sock.recv(1 << 20)  # exactly one datagram per connection
    keys = [key for key, _ in fields]
    assert len(keys) == len(set(keys))
    assert set(keys) <= ALLOWED_KEYS
    for _, value in fields:
        assert all(0x20 <= byte < 0x7F for byte in value)
    record = json.loads(dict(fields)["MESSAGE"])
    assert record["original_command_bytes"] == (0 if raw is None else len(raw))
