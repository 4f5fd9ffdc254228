"""journald's native protocol as written by hand (SECURITY.md §23, §26; corpus LOG-01).

The datagram is decoded here the way journald reads it, so the tests show
exactly which fields journald would store.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import gkunit
import pytest

from gatekeeper.login import audit, journald


def test_a_newline_in_a_value_cannot_start_a_field() -> None:
    """LOG-01: the classic ``KEY=value\\n`` framing would have stored PRIORITY=0 here."""
    command = gkunit.corpus_command(gkunit.corpus()["LOG-01"])
    assert command is not None
    value = command.decode()
    assert "\nPRIORITY=0\n" in value
    fields = {
        "MESSAGE": "m",
        "PRIORITY": "4",
        "SYSLOG_IDENTIFIER": "gatekeeper",
        "GATEKEEPER_DECISION": "deny",
        "GATEKEEPER_X": value,
    }
    decoded = gkunit.decode_datagram(journald.encode(fields))
    assert [key for key, _ in decoded] == list(fields)
    assert dict(decoded) == {key: text.encode() for key, text in fields.items()}


def test_every_field_uses_the_binary_framing() -> None:
    data = journald.encode({"MESSAGE": "hello", "PRIORITY": "6"})
    assert data == (
        b"MESSAGE\n" + (5).to_bytes(8, "little") + b"hello\n"
        b"PRIORITY\n" + (1).to_bytes(8, "little") + b"6\n"
    )


def test_the_audit_record_of_log_01_has_exactly_the_expected_fields() -> None:
    """End to end through the audit renderer: the request's newlines add nothing."""
    command = gkunit.corpus_command(gkunit.corpus()["LOG-01"])
    captured: list[bytes] = []
    record = {
        "event": "connect",
        "decision": "deny",
        "user": "pair",
        "original_command": command.decode() if command else None,
        "connection_id": "00ff",
    }
    audit.emit(audit.AuditConfig(), record, lambda fields: captured.append(journald.encode(fields)))
    (datagram,) = captured
    keys = [key for key, _ in gkunit.decode_datagram(datagram)]
    assert keys == [
        "MESSAGE",
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "MESSAGE_ID",
        "GATEKEEPER_EVENT",
        "GATEKEEPER_DECISION",
        "GATEKEEPER_USER",
        "GATEKEEPER_CONNECTION_ID",
    ]
    decoded = dict(gkunit.decode_datagram(datagram))
    assert decoded["PRIORITY"] == b"4"
    assert decoded["MESSAGE_ID"] == audit.MESSAGE_IDS["connect-deny"].encode()
    assert json.loads(decoded["MESSAGE"])["original_command"] == record["original_command"]


def test_invalid_utf8_in_a_value_is_escaped_not_fatal() -> None:
    decoded = dict(gkunit.decode_datagram(journald.encode({"MESSAGE": "a\udcffb"})))
    assert decoded["MESSAGE"] == b"a\\udcffb"


class Key(NamedTuple):
    id: str
    key: str


BAD_KEYS = [
    Key("empty", ""),
    Key("lower-case", "message"),
    Key("leading-underscore-trusted-field", "_UID"),
    Key("leading-digit", "1FIELD"),
    Key("equals", "PRIORITY=0"),
    Key("newline", "A\nPRIORITY"),
    Key("dash", "GATEKEEPER-USER"),
    Key("non-ascii", "\u00c9T\u00c9"),
    Key("65-chars", "A" * 65),
]


@pytest.mark.parametrize("case", BAD_KEYS, ids=[c.id for c in BAD_KEYS])
def test_invalid_field_names_are_refused(case: Key) -> None:
    with pytest.raises(ValueError, match="invalid journald field name"):
        journald.encode({"MESSAGE": "m", case.key: "x"})


@pytest.mark.parametrize("key", ["A", "A" * 64, "GATEKEEPER_USER", "X1_2"])
def test_valid_field_names(key: str) -> None:
    assert gkunit.decode_datagram(journald.encode({key: "v"})) == [(key, b"v")]


def test_oversized_datagram_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        journald.encode({"MESSAGE": "A" * journald.MAX_DATAGRAM})


@pytest.fixture
def receiver() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket standing where journald's would: it records what arrives."""
    for directory in gkunit.policy_dir():
        path = str(directory.path / "journal.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            yield path, sock


def test_send_delivers_one_datagram(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    fields = {"MESSAGE": "line one\nline two", "PRIORITY": "6"}
    journald.send(path, fields)
    sock.settimeout(1)
    assert sock.recv(1 << 20) == journald.encode(fields)


def test_send_to_a_missing_socket_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        journald.send(str(tmp_path / "nobody-listens"), {"MESSAGE": "m"})
