"""The file sink (``[audit] sink = "file"``) with real accounts, and ``audit --file``.

The layout under test is the documented one (docs/audit.md): a root-owned
0755 directory, the file root:<guests' group> 0620 with the append-only inode
flag (``chattr +a``). The guest's gatekeeper appends to it; the guest cannot
read, truncate, rewrite, rename or delete it.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import pty
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gktest
import pytest
from gkhost import guest_env

pytestmark = [pytest.mark.accounts]

POLICY = """version = 1

[audit]
sink = "file"
file = "{file}"

[programs.t]
argv = ["/bin/true"]

[[grant]]
users = ["{guest}", "{outsider}"]
program = "t"
default = true
"""


def chattr(flag: str, path: Path) -> bool:
    return (
        subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False).returncode
        == 0
    )


def new_sink(directory: Path, group: str, name: str | None = None) -> Path:
    """An empty audit file, root:group 0620, append-only."""
    path = directory / (name or f"audit-{secrets.token_hex(3)}.jsonl")
    path.touch(0o620)
    os.chown(path, 0, grp.getgrnam(group).gr_gid)
    path.chmod(0o620)
    gktest.require(chattr("+a", path), f"chattr +a on {path} (filesystem without append-only)")
    return path


@pytest.fixture
def sink(world_dir: Path, accounts) -> Iterator[Path]:
    gktest.require_tool("chattr")
    directory = world_dir / "log"
    directory.mkdir(mode=0o755)
    path = new_sink(directory, accounts.group)
    try:
        yield path
    finally:
        for leftover in directory.iterdir():
            chattr("-a", leftover)


@pytest.fixture
def policy(world_dir: Path, sink: Path, accounts) -> Path:
    text = POLICY.format(file=sink, guest=accounts.guest.name, outsider=accounts.outsider.name)
    return gktest.write_root_file(world_dir / f"policy-{secrets.token_hex(3)}.toml", text)


@pytest.fixture
def tty() -> Iterator[int]:
    master, slave = pty.openpty()
    yield slave
    os.close(master)
    os.close(slave)


def connect(account, policy: Path, command: str, tty: int) -> subprocess.CompletedProcess[bytes]:
    return gktest.run_as(
        account, [str(gktest.GATEKEEPER), "--policy", str(policy)], guest_env(command), stdin=tty
    )


def audit(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(gktest.GATEKEEPERCTL), "audit", *args], capture_output=True, check=False, timeout=60
    )


def records(*args: str) -> list[dict[str, Any]]:
    result = audit("--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def ref_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode().split("(ref ", 1)[1].split(")", 1)[0]


def as_guest(account, code: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return gktest.run_as(account, ["/usr/bin/python3", "-I", "-c", code, *args], {})


def test_real_connections_land_in_the_file_and_audit_reads_them_with_filters(
    accounts, sink, policy, tty
) -> None:
    allowed = connect(accounts.guest, policy, "run t", tty)
    assert allowed.returncode == 0, allowed.stderr
    denied = connect(accounts.guest, policy, "bogus", tty)
    assert denied.returncode == 1
    # The outsider is granted but not in the file's group: no record, no access (75).
    outsider = connect(accounts.outsider, policy, "run t", tty)
    assert outsider.returncode == 75

    lines = sink.read_bytes().splitlines()
    assert len(lines) == 2
    everything = records("--file", str(sink))
    assert [(r["user"], r["decision"]) for r in everything] == [
        (accounts.guest.name, "allow"),
        (accounts.guest.name, "deny"),
    ]
    assert {r["trust"] for r in everything} == {"unverified"}
    assert everything[0]["message_id"] == "d70adb69f9f7432fb8da87a871be838c"
    assert everything[1]["message_id"] == "931a5d69c1f3471783ef43c1c6f1a08c"

    assert [r["connection_id"] for r in records("--file", str(sink), "--decision", "deny")] == [
        ref_of(denied)
    ]
    assert len(records("--file", str(sink), "--connection", ref_of(denied))) == 1
    assert records("--file", str(sink), "--user", accounts.outsider.name) == []
    assert records("--file", str(sink), "--since", "+1h") == []
    assert len(records("--file", str(sink), "--since=1h ago", "--until=+1h")) == 2
    # Without --file, the policy's sink is read.
    assert len(records("--policy", str(policy))) == 2
    # File records carry no kernel-attested sender: --trusted-only hides them all.
    assert records("--file", str(sink), "--trusted-only") == []
    table = audit("--file", str(sink)).stdout.decode().splitlines()
    assert len(table) == 3
    assert all("UNVERIFIED" in line for line in table[1:])


def test_the_guest_can_neither_read_nor_rewrite_nor_remove_the_file(
    accounts, sink, policy, tty
) -> None:
    assert connect(accounts.guest, policy, "run t", tty).returncode == 0
    before = sink.read_bytes()
    attempts = r"""
import os, sys
path = sys.argv[1]
results = []
for name, flags in [("read", os.O_RDONLY), ("rewrite", os.O_WRONLY),
                    ("truncate", os.O_WRONLY | os.O_TRUNC)]:
    try:
        os.close(os.open(path, flags))
        results.append(name + ":ok")
    except OSError as error:
        results.append(name + ":" + str(error.errno))
for name, call in [("unlink", lambda: os.unlink(path)),
                   ("rename", lambda: os.rename(path, path + ".x")),
                   ("truncate()", lambda: os.truncate(path, 0))]:
    try:
        call()
        results.append(name + ":ok")
    except OSError as error:
        results.append(name + ":" + str(error.errno))
print(" ".join(results))
"""
    result = as_guest(accounts.guest, attempts, str(sink))
    assert result.returncode == 0, result.stderr
    outcome = dict(item.split(":") for item in result.stdout.decode().split())
    assert outcome == {
        "read": str(errno.EACCES),
        "rewrite": str(errno.EPERM),  # append-only: only O_APPEND opens for writing
        "truncate": str(errno.EPERM),
        "unlink": str(errno.EACCES),  # root-owned 0755 directory
        "rename": str(errno.EACCES),
        "truncate()": str(errno.EPERM),
    }
    assert sink.read_bytes() == before


def test_logrotate_moves_the_file_and_the_next_record_goes_to_the_new_one(
    accounts, sink, policy, tty
) -> None:
    assert connect(accounts.guest, policy, "run t", tty).returncode == 0
    rotated = sink.with_name(sink.name + ".1")
    # What a logrotate stanza's prerotate/postrotate does (docs/audit.md).
    assert chattr("-a", sink)
    sink.rename(rotated)
    new_sink(sink.parent, accounts.group, sink.name)
    second = connect(accounts.guest, policy, "bogus", tty)
    assert second.returncode == 1
    assert [r["connection_id"] for r in records("--file", str(sink))] == [ref_of(second)]
    assert len(records("--file", str(rotated))) == 1


def test_audit_warns_about_a_file_that_is_not_append_only(world_dir: Path) -> None:
    plain = world_dir / "plain.jsonl"
    plain.write_text(
        '{"event":"connect","decision":"deny","user":"x","timestamp":"2026-01-01T00:00:00Z"}\n'
    )
    result = audit("--file", str(plain))
    assert result.returncode == 0
    assert "is not append-only" in result.stderr.decode()
    assert "UNVERIFIED" in result.stdout.decode()


def test_audit_of_a_missing_file_fails_with_66(world_dir: Path) -> None:
    result = audit("--file", str(world_dir / "nope.jsonl"))
    assert result.returncode == 66
    assert "nope.jsonl" in result.stderr.decode()
