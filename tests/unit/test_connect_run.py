"""``connect.run`` end to end at unit level: one record, exit codes, guest lines, stdout.

A hand-built environment (the bytes sshd would pass) and a real root-owned
policy whose audit goes to ``sink = "file"`` in the same temporary directory.
``run`` returns what it would exec or print, so nothing is exec'd here. The
tests run as root: the account in every record is root, read from the kernel
whatever ``$USER`` says.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import gkunit
import pytest

from gatekeeper.login import audit, messages
from gatekeeper.login import entry as connect
from gatekeeper.login.plan import ExecPlan

ME = pwd.getpwuid(os.getuid())
SPEC_FIELDS = {
    "event", "decision", "reason", "user", "uid", "person", "key_fingerprint", "client_addr",
    "client_port", "server_addr", "server_port", "tty", "original_command", "request", "grant",
    "session", "program", "mode", "argv", "policy_sha256", "connection_id", "pid", "version",
    "timestamp",
}  # fmt: skip

BODY = f"""
[programs.hello]
argv = ["/bin/true", "--", "fixed argument"]

[programs.ghost]
argv = ["/nonexistent/ghost"]

[[grant]]
users = ["{ME.pw_name}"]
program = "hello"
default = true

[[grant]]
users = ["{ME.pw_name}"]
program = "ghost"
"""


@pytest.fixture
def policy_dir() -> Iterator[gkunit.PolicyDir]:
    yield from gkunit.policy_dir()


class Result(NamedTuple):
    result: ExecPlan | Any  # connect._Outcome
    records: list[dict[str, Any]]

    @property
    def record(self) -> dict[str, Any]:
        (only,) = self.records
        return only


def run(
    policy_dir: gkunit.PolicyDir,
    command: bytes | None,
    *,
    tty: bool = True,
    argv: list[str] | None = None,
    **env: bytes,
) -> Result:
    environ = gkunit.environ(command, **env)
    if not tty:
        del environ[b"SSH_TTY"]
    before = len(policy_dir.records())
    result = connect.run(
        ["--policy", str(policy_dir.policy)] if argv is None else argv,
        environ,
        stdin_is_tty=tty,
        now=gkunit.NOW,
    )
    return Result(result, policy_dir.records()[before:])


def test_allowed_run_returns_the_exact_plan_and_writes_one_record(
    policy_dir: gkunit.PolicyDir,
) -> None:
    policy_dir.write(BODY)
    out = run(policy_dir, b"run hello")
    assert out.result == ExecPlan(
        "/bin/true",
        ("/bin/true", "--", "fixed argument"),
        {
            "PATH": "/usr/bin:/bin",
            "HOME": ME.pw_dir,
            "USER": ME.pw_name,
            "LOGNAME": ME.pw_name,
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            "SHELL": "/bin/false",
            "LESSSECURE": "1",
        },
    )
    record = out.record
    assert record["decision"] == "allow"
    assert record["reason"] == "granted"
    assert record["grant"] == "grant[0]"
    assert record["program"] == "hello"
    assert record["argv"] == ["/bin/true", "--", "fixed argument"]
    assert record["user"] == ME.pw_name  # not $USER=someone-else
    assert record["uid"] == ME.pw_uid
    assert (record["client_addr"], record["client_port"]) == ("192.0.2.7", 50022)
    assert (record["server_addr"], record["server_port"]) == ("192.0.2.1", 22)
    assert record["tty"] == "/dev/pts/7"
    assert record["request"] == "run hello"
    assert record["pid"] == os.getpid()
    assert len(record["connection_id"]) == 16
    assert record["policy_sha256"] is not None
    assert set(record) <= audit.FIELD_NAMES
    assert set(record) >= SPEC_FIELDS


def test_default_login_runs_the_default_grant(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    out = run(policy_dir, None)
    assert isinstance(out.result, ExecPlan)
    assert out.result.argv[0] == "/bin/true"
    assert out.record["request"] == "default"


def test_a_bad_term_becomes_the_safe_default(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    out = run(policy_dir, b"run hello", TERM=b"xterm\x1b]0;OWNED\x07")
    assert isinstance(out.result, ExecPlan)
    assert out.result.env["TERM"] == "xterm"


class Denied(NamedTuple):
    id: str
    command: bytes | None
    code: int
    template: str
    reason: str
    tty: bool = True


DENIED = [
    Denied("unknown-command", b"bash", 1, messages.DENIED, "unknown_command"),
    Denied("no-grant", b"run nope", 1, messages.DENIED, "no_matching_grant"),
    Denied("no-session-grant", b"attach shared", 1, messages.DENIED, "no_matching_grant"),
    Denied("malformed", b"attach shared; id", 64, messages.BAD_REQUEST, "malformed_request"),
    Denied("needs-tty", b"run hello", 64, messages.NEED_TTY, "needs_tty", tty=False),
    Denied("default-needs-tty", None, 64, messages.NEED_TTY, "needs_tty", tty=False),
    Denied("program-missing", b"run ghost", 69, messages.UNAVAILABLE, "program_missing"),
    Denied(
        "sftp-subsystem",
        b"/usr/lib/openssh/sftp-server",
        1,
        messages.DENIED,
        "unknown_command",
        tty=False,
    ),
]


@pytest.mark.parametrize("case", DENIED, ids=[c.id for c in DENIED])
def test_denial(policy_dir: gkunit.PolicyDir, case: Denied) -> None:
    policy_dir.write(BODY)
    out = run(policy_dir, case.command, tty=case.tty)
    assert not isinstance(out.result, ExecPlan)
    record = out.record
    assert out.result.code == case.code
    assert out.result.stdout == ""
    assert out.result.stderr == messages.line(case.template, ref=record["connection_id"])
    assert record["decision"] == "deny"
    assert record["reason"] == case.reason
    assert record["exit_code"] == case.code


def test_sftp_gets_nothing_on_stdout(policy_dir: gkunit.PolicyDir) -> None:
    """SUB-08: any stdout byte corrupts the sftp protocol ('Received message too long')."""
    policy_dir.write(BODY)
    command = gkunit.corpus_command(gkunit.corpus()["SUB-08"])
    out = run(policy_dir, command, tty=False)
    assert out.result.code == 1
    assert out.result.stdout == ""
    assert out.result.stderr.startswith("gatekeeper: ")


class Informed(NamedTuple):
    id: str
    command: bytes
    reason: str


INFORMED = [
    Informed("help", b"help", "inform_help"),
    Informed("whoami", b"whoami", "inform_whoami"),
    Informed("list", b"list", "inform_list"),
]


@pytest.mark.parametrize("case", INFORMED, ids=[c.id for c in INFORMED])
def test_informational_verbs_print_to_stdout_and_exit_0(
    policy_dir: gkunit.PolicyDir, case: Informed
) -> None:
    policy_dir.write(BODY)
    out = run(policy_dir, case.command, tty=False)
    assert not isinstance(out.result, ExecPlan)
    assert out.result.code == 0
    assert out.result.stderr == ""
    assert out.result.stdout
    assert out.result.stdout.isascii()
    assert (out.record["decision"], out.record["reason"]) == ("allow", case.reason)


def test_help_text(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    assert run(policy_dir, b"help").result.stdout == messages.HELP


def test_whoami_json_is_the_kernel_identity(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    data = json.loads(run(policy_dir, b"whoami --json").result.stdout)
    assert data["user"] == ME.pw_name
    assert data["uid"] == ME.pw_uid
    assert data["client_addr"] == "192.0.2.7"


def test_list_json_names_the_programs(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    data = json.loads(run(policy_dir, b"list --json").result.stdout)
    assert data == {
        "sessions": [],
        "programs": [{"name": "ghost", "default": False}, {"name": "hello", "default": True}],
    }


# ------------------------------------------------------------ policy and audit failures


def test_invalid_policy_exits_78_and_records_the_reason(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write('[[grant]]\nusers = ["x"]\nprogram = "p"\nform = ["0.0.0.0/0"]\n')
    out = run(policy_dir, b"run hello")
    record = out.record
    assert out.result.code == 78
    assert out.result.stdout == ""
    assert out.result.stderr == messages.line(messages.UNAVAILABLE, ref=record["connection_id"])
    assert (record["decision"], record["reason"], record["exit_code"]) == (
        "error",
        "policy_invalid",
        78,
    )
    assert f"{policy_dir.policy}: grant[0].form: unknown key" in record["detail"].splitlines()
    assert "form" not in out.result.stderr  # the guest never sees policy internals


def test_unsafe_policy_exits_78_and_its_own_audit_table_is_not_trusted(
    policy_dir: gkunit.PolicyDir,
) -> None:
    policy_dir.write(BODY, mode=0o666)
    out = run(policy_dir, b"run hello")
    assert out.result.code == 78
    assert out.result.stderr.startswith("gatekeeper: service unavailable")
    assert out.records == []  # went to the default journald, not where the file says


def test_missing_policy_exits_78(policy_dir: gkunit.PolicyDir) -> None:
    out = run(policy_dir, b"run hello")
    assert out.result.code == 78
    assert out.result.stdout == ""
    assert out.result.stderr.startswith("gatekeeper: service unavailable")


@pytest.mark.parametrize("argv", [["--bogus"], ["--policy"], ["-c", "attach shared"]])
def test_bad_invocation_exits_78(policy_dir: gkunit.PolicyDir, argv: list[str]) -> None:
    policy_dir.write(BODY)
    out = run(policy_dir, b"run hello", argv=argv)
    assert out.result.code == 78
    assert out.records == []


@pytest.mark.parametrize("command", [b"run hello", b"bash", b"help"])
def test_unwritable_audit_sink_denies_with_75(policy_dir: gkunit.PolicyDir, command: bytes) -> None:
    sink = policy_dir.path / "no-such-dir" / "audit.jsonl"
    policy_dir.write(policy_dir.audit_header(sink) + BODY, header=False)
    out = run(policy_dir, command)
    assert not isinstance(out.result, ExecPlan)
    assert out.result.code == 75
    assert out.result.stdout == ""
    assert out.result.stderr.startswith(
        "gatekeeper: service unavailable, contact the administrator"
    )


def test_on_failure_allow_still_execs(policy_dir: gkunit.PolicyDir) -> None:
    sink = policy_dir.path / "no-such-dir" / "audit.jsonl"
    header = policy_dir.audit_header(sink) + 'on_failure = "allow"\n'
    policy_dir.write(header + BODY, header=False)
    assert isinstance(run(policy_dir, b"run hello").result, ExecPlan)


# ---------------------------------------------------------------- the attack corpus


def corpus_ids() -> list[str]:
    return sorted(
        entry_id
        for entry_id, entry in gkunit.corpus().items()
        if entry["vector"].get("original_command") is not None
    )


@pytest.mark.parametrize("entry_id", corpus_ids())
def test_every_corpus_command_gives_one_record_and_a_clean_answer(
    policy_dir: gkunit.PolicyDir, entry_id: str
) -> None:
    policy_dir.write(BODY)
    command = gkunit.corpus_command(gkunit.corpus()[entry_id])
    assert command is not None
    out = run(policy_dir, command, tty=True)
    record = out.record
    assert record["original_command_bytes"] == len(command)
    assert json.dumps(record, ensure_ascii=True)  # serialisable
    if isinstance(out.result, ExecPlan):
        # Only the policy's argv can come out, whatever the guest typed.
        assert out.result.argv == ("/bin/true", "--", "fixed argument")
        return
    ref = record["connection_id"]
    allowed_lines = {
        messages.line(template, ref=ref)
        for template in (
            messages.DENIED,
            messages.BAD_REQUEST,
            messages.NEED_TTY,
            messages.UNAVAILABLE,
        )
    }
    assert out.result.stderr in allowed_lines
    assert out.result.stdout == ""
    assert out.result.code == record["exit_code"]
    assert out.result.code in {1, 64}


def test_each_run_has_its_own_connection_id(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    first, second = run(policy_dir, b"bash"), run(policy_dir, b"bash")
    assert first.record["connection_id"] != second.record["connection_id"]
    assert first.result.stderr != second.result.stderr
    assert first.result.code == second.result.code == 1


def test_same_request_same_decision_and_argv(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    first, second = run(policy_dir, b"run hello"), run(policy_dir, b"run hello")
    assert first.result == second.result
    keep = ("decision", "reason", "grant", "argv", "policy_sha256")
    assert [first.record[k] for k in keep] == [second.record[k] for k in keep]


def test_record_path_is_the_configured_file_only(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(BODY)
    run(policy_dir, b"bash")
    assert sorted(p.name for p in Path(policy_dir.path).iterdir()) == [
        "audit.jsonl",
        "gatekeeper.toml",
    ]


# ------------------------------------------------- the journald sink, on a plain socket


@pytest.fixture
def journal_receiver(policy_dir: gkunit.PolicyDir) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket where journald's would be: the test decodes what arrives."""
    path = str(policy_dir.path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)  # noqa: FBT003 - the socket API
        yield path, sock


def datagrams(sock: socket.socket) -> list[list[tuple[str, bytes]]]:
    received = []
    with contextlib.suppress(BlockingIOError):
        while True:
            received.append(gkunit.decode_datagram(sock.recv(1 << 20)))
    return received


def journald_policy(policy_dir: gkunit.PolicyDir, socket_path: str, body: str) -> None:
    header = f'version = 1\n[audit]\nidentifier = "gk-unit"\njournal_socket = "{socket_path}"\n'
    policy_dir.write(header + body, header=False)


def test_journald_record_of_a_newline_injection_has_exactly_the_expected_fields(
    policy_dir: gkunit.PolicyDir, journal_receiver: tuple[str, socket.socket]
) -> None:
    """LOG-01 through the whole connection path: the newlines add no field."""
    path, sock = journal_receiver
    journald_policy(policy_dir, path, BODY)
    command = gkunit.corpus_command(gkunit.corpus()["LOG-01"])
    result = connect.run(
        ["--policy", str(policy_dir.policy)],
        gkunit.environ(command),
        stdin_is_tty=True,
        now=gkunit.NOW,
    )
    assert result.code == 64
    (fields,) = datagrams(sock)
    assert [key for key, _ in fields] == [
        "MESSAGE",
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "MESSAGE_ID",
        "GATEKEEPER_EVENT",
        "GATEKEEPER_DECISION",
        "GATEKEEPER_USER",
        "GATEKEEPER_CLIENT_ADDR",
        "GATEKEEPER_CONNECTION_ID",
    ]
    decoded = dict(fields)
    assert decoded["PRIORITY"] == b"4"
    assert decoded["SYSLOG_IDENTIFIER"] == b"gk-unit"
    assert decoded["GATEKEEPER_DECISION"] == b"deny"
    record = json.loads(decoded["MESSAGE"])
    assert record["original_command"].count("\\x0a") == 3
    assert result.stderr == messages.line(messages.BAD_REQUEST, ref=record["connection_id"])


def test_a_policy_with_thousands_of_errors_is_still_recorded(
    policy_dir: gkunit.PolicyDir, journal_receiver: tuple[str, socket.socket]
) -> None:
    """The admin finds the reason in the journal even when the error list is huge."""
    path, sock = journal_receiver
    journald_policy(policy_dir, path, '[[grant]]\nusers = ["x"]\nform = []\n' * 3000)
    result = connect.run(
        ["--policy", str(policy_dir.policy)],
        gkunit.environ(b"run hello"),
        stdin_is_tty=True,
        now=gkunit.NOW,
    )
    assert result.code == 78
    (fields,) = datagrams(sock)
    record = json.loads(dict(fields)["MESSAGE"])
    assert record["reason"] == "policy_invalid"
    assert record["detail"].startswith(f"{policy_dir.policy}: grant[0].form: unknown key")
