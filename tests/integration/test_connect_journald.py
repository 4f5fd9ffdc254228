"""One audit record per connection, in a real journald (SPEC §5, SECURITY.md §23-26)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import gktest
import gkunit
import pytest
from gkhost import guest_env

pytestmark = [pytest.mark.journald, pytest.mark.accounts]

HELLO = """
[programs.hello]
argv = ["/bin/echo", "hello from the program"]

[[grant]]
users = ["{user}"]
program = "hello"
"""

#: The fields SPEC §5 promises in every connect record.
SPEC_FIELDS = gkunit.SPEC_FIELDS


def connect(
    account: gktest.Account, gatekeeper_bin: Path, policy: Path, command: str | None, **extra: str
) -> subprocess.CompletedProcess[bytes]:
    return gktest.run_as(
        account,
        [str(gatekeeper_bin), "--policy", str(policy)],
        guest_env(command, **extra),
        stdin=None,
    )


def ref_of(stderr: bytes) -> str:
    text = stderr.decode()
    assert "(ref " in text, text
    return text.split("(ref ", 1)[1].split(")", 1)[0]


def test_run_hello_execs_the_program_and_leaves_one_allow_record(
    accounts, write_policy, journal, gatekeeper_bin
) -> None:
    policy = write_policy(HELLO.format(user=accounts.guest.name))
    # A pty is required for run; `script` gives the guest one.
    result = gktest.run_as(
        accounts.guest,
        ["script", "-qec", f"{gatekeeper_bin} --policy {policy}", "/dev/null"],
        guest_env("run hello"),
    )
    assert result.returncode == 0
    assert b"hello from the program" in result.stdout
    records = journal.wait_for(f"GATEKEEPER_USER={accounts.guest.name}", "GATEKEEPER_PROGRAM=hello")
    assert len(records) == 1
    entry = records[0]
    record = json.loads(entry["MESSAGE"])
    assert set(record) >= SPEC_FIELDS
    assert record["decision"] == "allow"
    assert record["argv"] == ["/bin/echo", "hello from the program"]
    assert record["uid"] == accounts.guest.uid
    assert record["client_addr"] == "127.0.0.1"
    assert record["client_port"] == 50022
    assert entry["PRIORITY"] == "6"
    assert entry["GATEKEEPER_CONNECTION_ID"] == record["connection_id"]
    assert entry["_UID"] == str(accounts.guest.uid)  # journald's own, unforgeable field


def test_bash_is_denied_with_exit_1_and_exactly_one_deny_record(
    accounts, write_policy, journal, gatekeeper_bin
) -> None:
    policy = write_policy(HELLO.format(user=accounts.guest.name))
    result = connect(accounts.guest, gatekeeper_bin, policy, "bash")
    assert result.returncode == 1
    assert result.stdout == b""
    ref = ref_of(result.stderr)
    assert result.stderr.decode() == (
        f"gatekeeper: access denied (ref {ref}). Run 'list' to see what you may use.\n"
    )
    records = journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")
    assert len(records) == 1
    assert records[0]["GATEKEEPER_DECISION"] == "deny"
    assert records[0]["PRIORITY"] == "4"
    assert json.loads(records[0]["MESSAGE"])["reason"] == "unknown_command"


def test_a_newline_in_the_request_cannot_add_journal_fields(
    accounts, write_policy, journal, gatekeeper_bin
) -> None:
    """Corpus LOG-01: hand-framed datagrams let '\\n' inject PRIORITY and a 2nd decision."""
    policy = write_policy(HELLO.format(user=accounts.guest.name))
    injected = "run hello\nPRIORITY=0\nGATEKEEPER_DECISION=allow\nSYSLOG_IDENTIFIER=sshd"
    result = connect(accounts.guest, gatekeeper_bin, policy, injected)
    assert result.returncode == 64
    ref = ref_of(result.stderr)
    (entry,) = journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")
    # journalctl -o json shows a field given twice as a list: each is a plain string here.
    assert entry["GATEKEEPER_DECISION"] == "deny"
    assert entry["PRIORITY"] == "4"
    assert entry["SYSLOG_IDENTIFIER"] == "gatekeeper"
    record = json.loads(entry["MESSAGE"])
    assert record["original_command"] == (
        "run hello\\x0aPRIORITY=0\\x0aGATEKEEPER_DECISION=allow\\x0aSYSLOG_IDENTIFIER=sshd"
    )


def test_control_characters_never_reach_the_journal_raw(
    accounts, write_policy, journal, gatekeeper_bin
) -> None:
    """Corpus LOG-03/LOG-08: OSC/CSI sequences are escaped before they are stored."""
    policy = write_policy(HELLO.format(user=accounts.guest.name))
    result = connect(accounts.guest, gatekeeper_bin, policy, "attach \x1b]52;c;cHduZWQ=\x07\x1b[2J")
    ref = ref_of(result.stderr)
    assert "\x1b" not in result.stderr.decode()
    (entry,) = journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")
    assert "\x1b" not in entry["MESSAGE"]
    assert all(isinstance(v, str) and "\x1b" not in v for v in entry.values())
    assert "\\x1b]52" in json.loads(entry["MESSAGE"])["original_command"]


def test_an_unwritable_audit_sink_denies_with_75(accounts, world_dir, gatekeeper_bin) -> None:
    policy = gktest.write_root_file(
        world_dir / "policy.toml",
        f'version = 1\n[audit]\njournal_socket = "{world_dir}/no-such-journal"\n'
        + HELLO.format(user=accounts.guest.name),
    )
    result = gktest.run_as(
        accounts.guest,
        ["script", "-qec", f"{gatekeeper_bin} --policy {policy}", "/dev/null"],
        guest_env("run hello"),
    )
    assert result.returncode == 75
    assert b"hello from the program" not in result.stdout
    assert b"service unavailable, contact the administrator (ref " in result.stdout


def test_a_policy_writable_by_the_guest_denies_everything_with_78(
    accounts, write_policy, journal, gatekeeper_bin
) -> None:
    policy = write_policy(HELLO.format(user=accounts.guest.name))
    os.chown(policy, accounts.guest.uid, -1)
    result = connect(accounts.guest, gatekeeper_bin, policy, "run hello")
    assert result.returncode == 78
    ref = ref_of(result.stderr)
    assert str(policy) not in result.stderr.decode()  # no policy internals for the guest
    # The [audit] table of an unsafe file is not trusted: the record goes to the system
    # journal (absent here), never to a place the guest chose. Nothing lands in ours.
    assert journal.by_connection(ref) == []


def test_an_invalid_policy_is_audited_with_the_reason(
    accounts, write_policy, journal, gatekeeper_bin
) -> None:
    policy = write_policy(
        HELLO.format(user=accounts.guest.name).replace(
            "program = ", 'form = ["10.0.0.0/8"]\nprogram = '
        )
    )
    result = connect(accounts.guest, gatekeeper_bin, policy, "run hello")
    assert result.returncode == 78
    ref = ref_of(result.stderr)
    (entry,) = journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")
    record = json.loads(entry["MESSAGE"])
    assert record["decision"] == "error"
    assert record["reason"] == "policy_invalid"
    assert "grant[0].form: unknown key" in record["detail"]
    assert entry["PRIORITY"] == "3"
