"""The audit record (SPEC §5): field names, JSON, escaping, capping, priorities, sinks."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import gkunit
import pytest

from gatekeeper.login import audit
from gatekeeper.login import record as stage_record
from gatekeeper.login import request as rq
from gatekeeper.policy.model import AuditConfig

#: SPEC §5: "The JSON object holds at least ..."
SPEC_FIELDS = {
    "event", "decision", "reason", "user", "uid", "person", "key_fingerprint", "client_addr",
    "client_port", "server_addr", "server_port", "tty", "original_command", "request", "grant",
    "session", "program", "mode", "argv", "policy_sha256", "connection_id", "pid", "version",
    "timestamp",
}  # fmt: skip
#: SPEC §5 native fields besides MESSAGE, SYSLOG_IDENTIFIER and PRIORITY.
SPEC_JOURNAL_FIELDS = {
    "GATEKEEPER_EVENT", "GATEKEEPER_DECISION", "GATEKEEPER_USER", "GATEKEEPER_PERSON",
    "GATEKEEPER_CLIENT_ADDR", "GATEKEEPER_SESSION", "GATEKEEPER_PROGRAM", "GATEKEEPER_MODE",
    "GATEKEEPER_CONNECTION_ID",
}  # fmt: skip


def emitted(record: Mapping[str, Any], config: AuditConfig | None = None) -> dict[str, str]:
    """The journald fields ``audit.emit`` hands to its writer (the sink's seam, not a mock)."""
    captured: list[Mapping[str, str]] = []
    audit.emit(config or AuditConfig(), record, captured.append)
    (fields,) = captured
    return dict(fields)


def connect_record(command: bytes | None, **conn: Any) -> dict[str, Any]:
    connection = gkunit.connection(original_command=command, **conn)
    stages = stage_record.Stages("0123456789abcdef", connection.uid, connection, rq.parse(command))
    return stage_record.build(stages, pid=os.getpid())


def test_connect_record_fields_are_the_documented_ones() -> None:
    record = connect_record(b"attach shared", key_fingerprints=("SHA256:" + "k" * 43,))
    message = json.loads(emitted(record)["MESSAGE"])
    assert set(message) <= audit.FIELD_NAMES
    assert set(message) >= SPEC_FIELDS


def test_documented_field_names_are_unique_snake_case() -> None:
    names = [name for name, _ in audit.FIELDS]
    assert len(names) == len(set(names))
    assert all(name.isidentifier() and name == name.lower() for name in names)
    assert set(audit.JOURNAL_FIELDS) <= audit.FIELD_NAMES
    assert {"GATEKEEPER_" + name.upper() for name in audit.JOURNAL_FIELDS} == SPEC_JOURNAL_FIELDS


def test_native_fields_mirror_the_record() -> None:
    record = connect_record(b"attach shared")
    record.update(decision="allow", session="shared", mode="read-only", person="bob")
    fields = emitted(record, AuditConfig(identifier="gk-test"))
    assert fields["SYSLOG_IDENTIFIER"] == "gk-test"
    assert fields["PRIORITY"] == "6"
    assert fields["GATEKEEPER_EVENT"] == "connect"
    assert fields["GATEKEEPER_DECISION"] == "allow"
    assert fields["GATEKEEPER_USER"] == "pair"
    assert fields["GATEKEEPER_PERSON"] == "bob"
    assert fields["GATEKEEPER_CLIENT_ADDR"] == "127.0.0.1"
    assert fields["GATEKEEPER_SESSION"] == "shared"
    assert fields["GATEKEEPER_MODE"] == "read-only"
    assert fields["GATEKEEPER_CONNECTION_ID"] == "0123456789abcdef"
    assert "GATEKEEPER_PROGRAM" not in fields  # null values are not mirrored


@pytest.mark.parametrize(("decision", "priority"), [("allow", "6"), ("deny", "4"), ("error", "3")])
def test_priority_follows_the_decision(decision: str, priority: str) -> None:
    record = connect_record(None)
    record["decision"] = decision
    assert emitted(record)["PRIORITY"] == priority


def test_timestamp_is_utc_iso_8601() -> None:
    before = datetime.now(UTC)
    message = json.loads(emitted(connect_record(None))["MESSAGE"])
    stamp = datetime.fromisoformat(message["timestamp"])
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert before <= stamp <= datetime.now(UTC)


class Escaped(NamedTuple):
    id: str
    logged: str  # original_command as stored, printable ASCII only


ESCAPED = [
    Escaped("LOG-03", "a\\x1b]0;pwned\\x07\\x1b[2J"),
    Escaped("LOG-06", "vim \\xff\\xfe /my_project"),
    Escaped("LOG-08", "attach \\x1b]52;c;cHduZWQ=\\x07\\x1b]0;title\\x07"),
    Escaped(
        "LOG-01", "vim /my_project\\x0aPRIORITY=0\\x0aGK_DECISION=allow\\x0aSYSLOG_IDENTIFIER=sshd"
    ),
    Escaped("PARSE-16", "attach caf\\xe9 \\xff\\xfe"),
    Escaped("PARSE-13", "\\uff41ttach shared"),
    Escaped("LOG-04", 'x", "decision": "allow'),
    Escaped("SCP-02", "scp -o ProxyCommand=sh\\\\ -c\\\\ id -f x y:z"),
]


@pytest.mark.parametrize("case", ESCAPED, ids=[c.id for c in ESCAPED])
def test_guest_text_is_escaped_in_the_record(case: Escaped) -> None:
    command = gkunit.corpus_command(gkunit.corpus()[case.id])
    record = connect_record(command)
    record["decision"] = "deny"
    fields = emitted(record)
    raw_message = fields["MESSAGE"]
    assert raw_message.isascii()
    assert all(0x20 <= ord(ch) < 0x7F for ch in raw_message)
    message = json.loads(raw_message)
    assert message["original_command"] == case.logged
    assert message["original_command_bytes"] == len(command or b"")
    assert message["decision"] == "deny"  # LOG-04: no injected "allow"


def test_long_command_is_capped_with_a_hash_of_the_whole() -> None:
    """LOG-07: 120000 bytes would be written twice and overflow the datagram."""
    command = gkunit.corpus_command(gkunit.corpus()["LOG-07"])
    assert command is not None
    assert len(command) == 120000
    record = connect_record(command)
    fields = emitted(record)
    message = json.loads(fields["MESSAGE"])
    assert message["original_command"] == "A" * audit.MAX_TEXT + "..."
    assert message["original_command_bytes"] == 120000
    assert message["original_command_sha256"] == hashlib.sha256(command).hexdigest()
    assert message["request"] == "malformed:too_long"
    from gatekeeper.login import journald  # noqa: PLC0415

    assert len(journald.encode(fields)) < 16 * 1024


def test_short_command_has_no_hash() -> None:
    message = json.loads(emitted(connect_record(b"attach shared"))["MESSAGE"])
    assert message["original_command"] == "attach shared"
    assert "original_command_sha256" not in message


def test_escaping_that_crosses_the_cap_still_hashes_the_raw_bytes() -> None:
    command = b"\x1b" * 1000  # 1000 bytes, 4000 escaped characters
    fields = audit.command_fields(command)
    assert fields["original_command"] == "\\x1b" * 512 + "..."
    assert fields["original_command_sha256"] == hashlib.sha256(command).hexdigest()


def test_no_command() -> None:
    assert audit.command_fields(None) == {"original_command": None, "original_command_bytes": 0}


def test_tty_is_escaped() -> None:
    record = connect_record(None, tty="/dev/pts/1\x1b[2J")
    assert record["tty"] == "/dev/pts/1\\x1b[2J"


# ------------------------------------------------------------------------- sinks


@pytest.fixture
def policy_dir() -> Iterator[gkunit.PolicyDir]:
    yield from gkunit.policy_dir()


def test_file_sink_appends_one_json_line(policy_dir: gkunit.PolicyDir) -> None:
    config = AuditConfig(sink="file", file=str(policy_dir.audit_file))
    audit.emit(config, connect_record(b"attach a"))
    audit.emit(config, connect_record(b"attach b"))
    lines = policy_dir.audit_file.read_bytes().splitlines()
    assert [json.loads(line)["original_command"] for line in lines] == ["attach a", "attach b"]
    assert os.stat(policy_dir.audit_file).st_mode & 0o037 == 0  # at most 0640, whatever the umask


def test_unwritable_file_sink_raises_audit_error(policy_dir: gkunit.PolicyDir) -> None:
    config = AuditConfig(sink="file", file=str(policy_dir.path / "missing-dir" / "a.jsonl"))
    with pytest.raises(audit.AuditError, match="FileNotFoundError"):
        audit.emit(config, connect_record(None))


def test_file_sink_refuses_a_symlink(policy_dir: gkunit.PolicyDir) -> None:
    target = policy_dir.path / "elsewhere"
    policy_dir.audit_file.symlink_to(target)
    with pytest.raises(audit.AuditError):
        audit.emit(AuditConfig(sink="file", file=str(policy_dir.audit_file)), connect_record(None))
    assert not target.exists()


def test_missing_journald_socket_raises_audit_error(policy_dir: gkunit.PolicyDir) -> None:
    config = AuditConfig(journal_socket=str(policy_dir.path / "no-journald"))
    with pytest.raises(audit.AuditError):
        audit.emit(config, connect_record(None))


def test_message_ids_are_fixed_and_distinct() -> None:
    ids = list(audit.MESSAGE_IDS.values())
    assert len(ids) == len(set(ids))
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
