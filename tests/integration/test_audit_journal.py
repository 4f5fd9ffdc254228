"""``gatekeeperctl audit`` against a real journald namespace (issue 6, SECURITY.md §24-25).

Records come from real connections through the installed ``python -I``
launcher, run as throwaway guest accounts on a real pty; forged records are
sent by other accounts with journald's native protocol; host-side join/leave
records are written by the host account through ``gatekeeper.login.audit.emit``, as
the session's tmux hooks would.
"""

from __future__ import annotations

import importlib
import json
import os
import pty
import secrets
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gktest
import pytest
from gkhost import guest_env

pytestmark = [pytest.mark.journald, pytest.mark.accounts]

PROGRAM = """
[programs.t]
argv = ["/bin/true"]

[[grant]]
users = ["{user}"]
program = "t"
default = true
"""

#: A real session whose tmux binary is /bin/true: every `attach shared` is a real,
#: allowed connection that execs and ends at once (no 500 tmux clients to detach).
SESSION = """
[tmux]
binary = "/bin/true"

[sessions.shared]
socket = "{socket}"
owner = "{owner}"
target = "shared"

[[grant]]
users = ["{user}"]
session = "shared"
mode = "read-only"
default = true
"""


def ctl(journal, *args: str, policy: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    argv = [str(gktest.GATEKEEPERCTL), "audit", "--namespace", journal.namespace]
    argv += ["--launcher", str(gktest.GATEKEEPER)]
    if policy is not None:
        argv += ["--policy", str(policy)]
    return subprocess.run([*argv, *args], capture_output=True, check=False, timeout=120)


def json_lines(result: subprocess.CompletedProcess[bytes]) -> list[dict]:
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return [json.loads(line) for line in result.stdout.splitlines()]


class Pty:
    """One pty whose slave end is every guest's stdin (``run``/``attach`` need a tty)."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def tty():
    terminal = Pty()
    yield terminal
    terminal.close()


def connect(account, policy: Path, command: str, tty: Pty, **extra: str):
    return gktest.run_as(
        account,
        [str(gktest.GATEKEEPER), "--policy", str(policy)],
        guest_env(command, **extra),
        stdin=tty.slave,
    )


def forge(account, journal, record: dict, *, hold: bool = False) -> subprocess.Popen[bytes]:
    """Send ``record`` as ``account`` with the native protocol, tagged as the gatekeeper.

    With ``hold`` the sender stays alive until its stdin closes, so journald
    sees its real ``_EXE``/``_CMDLINE``.
    """
    code = (
        "import json, os, sys\n"
        "from gatekeeper.login import journald\n"
        "record = json.loads(sys.argv[2])\n"
        "record['pid'] = record.get('pid', os.getpid())\n"
        "journald.send(sys.argv[1], {'MESSAGE': json.dumps(record), "
        "'SYSLOG_IDENTIFIER': 'gatekeeper', 'PRIORITY': '6', "
        "'GATEKEEPER_CONNECTION_ID': record['connection_id']})\n"
        "print('sent', flush=True)\n"
        "sys.stdin.read() if sys.argv[3] == 'hold' else None\n"
    )
    argv = [str(gktest.PYTHON), "-I", "-c", code, journal.socket, json.dumps(record)]
    return subprocess.Popen(
        [*argv, "hold" if hold else "go"],
        user=account.uid,
        group=account.gid,
        extra_groups=account.groups,
        env={"PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_sent(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == b"sent\n", process.stderr.read() if process.stderr else b""


def finish(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    process.wait(10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def since_now() -> str:
    return f"@{time.time() - 1:.3f}"


# --------------------------------------------------------------------------- trust


def test_a_record_forged_by_another_uid_is_flagged_and_hidden_with_trusted_only(
    accounts, write_policy, journal, tty
) -> None:
    since = since_now()
    policy = write_policy(PROGRAM.format(user=accounts.guest.name))
    real = connect(accounts.guest, policy, "run t", tty, SSH_CONNECTION="10.1.2.3 4242 10.0.0.1 22")
    assert real.returncode == 0, real.stderr
    forged_id = f"forged{secrets.token_hex(5)}"
    # The outsider claims the guest came in from 203.0.113.9 and was allowed.
    fake = {
        "event": "connect",
        "decision": "allow",
        "reason": "granted",
        "user": accounts.guest.name,
        "uid": accounts.guest.uid,
        "client_addr": "203.0.113.9",
        "session": "shared",
        "mode": "read-write",
        "connection_id": forged_id,
        "original_command": "attach shared",
    }
    sender = forge(accounts.outsider, journal, fake)
    wait_sent(sender)
    finish(sender)
    journal.wait_for(f"GATEKEEPER_CONNECTION_ID={forged_id}")

    records = json_lines(ctl(journal, "--json", "--user", accounts.guest.name, "--since", since))
    by_id = {r["connection_id"]: r for r in records}
    assert by_id[forged_id]["trust"] == "forged"
    assert f"sent by uid {accounts.outsider.uid}" in by_id[forged_id]["trust_reason"]
    genuine = [r for r in records if r["client_addr"] == "10.1.2.3"]
    assert len(genuine) == 1
    assert genuine[0]["trust"] == "trusted", genuine[0]["trust_reason"]

    table = ctl(journal, "--user", accounts.guest.name, "--since", since).stdout.decode()
    forged_line = next(line for line in table.splitlines() if forged_id in line)
    assert "FORGED" in forged_line
    assert "203.0.113.9" in forged_line
    genuine_line = next(line for line in table.splitlines() if "10.1.2.3" in line)
    assert "FORGED" not in genuine_line

    trusted = json_lines(
        ctl(journal, "--json", "--trusted-only", "--user", accounts.guest.name, "--since", since)
    )
    assert forged_id not in {r["connection_id"] for r in trusted}
    assert "10.1.2.3" in {r["client_addr"] for r in trusted}


def test_a_record_the_guest_writes_itself_with_python_is_flagged(accounts, journal) -> None:
    """Same uid, but journald saw ``python -c``, not the gatekeeper launcher."""
    since = since_now()
    forged_id = f"selfmade{secrets.token_hex(5)}"
    fake = {
        "event": "connect",
        "decision": "deny",
        "user": accounts.member.name,
        "uid": accounts.member.uid,
        "connection_id": forged_id,
    }
    sender = forge(accounts.member, journal, fake, hold=True)
    try:
        wait_sent(sender)
        journal.wait_for(f"GATEKEEPER_CONNECTION_ID={forged_id}")
    finally:
        finish(sender)
    (record,) = json_lines(ctl(journal, "--json", "--connection", forged_id, "--since", since))
    assert record["trust"] == "forged"
    assert "not the gatekeeper launcher" in record["trust_reason"]
    assert record["journal"]["_UID"] == str(accounts.member.uid)


def test_a_real_record_is_untrusted_when_the_launcher_is_not_the_accepted_one(
    accounts, write_policy, journal, tty
) -> None:
    """``--launcher`` names the installed gatekeeper; another path is not it."""
    since = since_now()
    policy = write_policy(PROGRAM.format(user=accounts.guest.name))
    port = str(20000 + secrets.randbelow(20000))
    result = connect(
        accounts.guest, policy, "bogus", tty, SSH_CONNECTION=f"127.0.0.1 {port} 127.0.0.1 22"
    )
    assert result.returncode == 1
    journal.wait_for(f"GATEKEEPER_USER={accounts.guest.name}", "GATEKEEPER_DECISION=deny")
    argv = [str(gktest.GATEKEEPERCTL), "audit", "--namespace", journal.namespace, "--json"]
    argv += ["--since", since, "--launcher", "/usr/local/bin/not-the-gatekeeper"]
    out = subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout
    mine = [r for r in map(json.loads, out.splitlines()) if r.get("client_port") == int(port)]
    assert len(mine) == 1
    journal_fields = mine[0]["journal"]
    if "_CMDLINE" in journal_fields:  # journald read the process before it exited
        assert mine[0]["trust"] == "forged"
    good = json_lines(ctl(journal, "--json", "--since", since, "--decision", "deny"))
    assert [r["trust"] for r in good if r.get("client_port") == int(port)] == ["trusted"]


# --------------------------------------------------------------------------- escaping


def test_control_characters_in_a_request_show_escaped_in_the_table(
    accounts, write_policy, journal, tty
) -> None:
    since = since_now()
    policy = write_policy(PROGRAM.format(user=accounts.guest.name))
    nasty = "attach \x1b]0;OWNED\x07\x1b[2J\u202eshared"
    result = connect(accounts.guest, policy, nasty, tty)
    assert result.returncode != 0
    ref = result.stderr.decode().split("(ref ", 1)[1].split(")", 1)[0]
    journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")
    # A forged record with raw control characters in every field it can reach.
    forged_id = f"esc{secrets.token_hex(5)}"
    raw = {
        "event": "connect\x1b[31m",
        "decision": "allow\x07",
        "user": "root\x1b]52;c;ZWNobyBwd25lZA==\x07",
        "connection_id": forged_id,
        "original_command": "\x1b[2Jrm -rf\r\n",
        "client_addr": "\u202e1.0.0.127",
    }
    sender = forge(accounts.outsider, journal, raw)
    wait_sent(sender)
    finish(sender)
    journal.wait_for(f"GATEKEEPER_CONNECTION_ID={forged_id}")

    table = ctl(journal, "--since", since)
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert all(0x20 <= b < 0x7F or b == 0x0A for b in text), "raw control bytes in the table"
    lines = text.decode().splitlines()
    real_line = next(line for line in lines if ref in line)
    assert "attach \\x1b]0;OWNED\\x07\\x1b[2J\\u202eshared" in real_line
    forged_line = next(line for line in lines if forged_id in line)
    assert "FORGED" in forged_line
    assert "root\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in forged_line
    assert "\\x1b[2Jrm -rf\\x0d\\x0a" in forged_line
    # JSON lines are pure ASCII too (json escapes control characters).
    as_json = ctl(journal, "--json", "--since", since).stdout
    assert all(0x20 <= b < 0x7F or b == 0x0A for b in as_json)


# --------------------------------------------------------------------------- follow


def test_follow_shows_a_new_connection_within_a_second(accounts, write_policy, journal, tty):
    policy = write_policy(PROGRAM.format(user=accounts.guest.name))
    first = connect(accounts.guest, policy, "run t", tty)
    assert first.returncode == 0
    argv = [str(gktest.GATEKEEPERCTL), "audit", "-f", "--json", "-n", "1"]
    argv += ["--namespace", journal.namespace, "--launcher", str(gktest.GATEKEEPER)]
    follower = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: list[dict] = []

    def pump() -> None:
        assert follower.stdout is not None
        lines.extend(json.loads(line) for line in follower.stdout)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        # The backlog line proves journalctl is following the end of the journal.
        gktest.wait_until(lambda: lines, 20, "the backlog record from audit -f")
        port = 20000 + secrets.randbelow(20000)
        result = connect(
            accounts.guest, policy, "run t", tty, SSH_CONNECTION=f"127.0.0.1 {port} 127.0.0.1 22"
        )
        assert result.returncode == 0
        started = time.monotonic()
        (seen,) = gktest.wait_until(
            lambda: [r for r in lines if r.get("client_port") == port] or None,
            1.0,
            "the new connection in audit -f",
        )
        assert time.monotonic() - started <= 1.0
        assert seen["trust"] == "trusted", seen["trust_reason"]
        assert seen["decision"] == "allow"
        assert seen["program"] == "t"
    finally:
        follower.terminate()
        follower.wait(10)
        reader.join(5)
        if follower.stdout is not None:
            follower.stdout.close()


# --------------------------------------------------------------------------- sessions


HOST_WRITER = """
import json, sys
from gatekeeper.login import audit
from gatekeeper.policy.model import AuditConfig
config = AuditConfig(journal_socket=sys.argv[1])
for line in sys.stdin:
    audit.emit(config, json.loads(line))
"""


def forget_policy_cache(policy: Path) -> None:
    """Remove the validated-policy cache the warm-up left for this test's policy."""
    try:
        policycache = importlib.import_module("gatekeeper.policy.cache")
    except ImportError:
        return
    Path(policycache.cache_file(str(policy))).unlink(missing_ok=True)


def test_500_real_connections_join_into_sessions_with_their_durations(
    accounts, host_session, write_policy, journal, tty, request
) -> None:
    since = since_now()
    policy = write_policy(
        SESSION.format(
            socket=host_session.socket, owner=accounts.host.name, user=accounts.guest.name
        )
    )
    # Warm the validated-policy cache (the gatekeeper stores it when run as root).
    gktest.run_as(None, [str(gktest.GATEKEEPER), "--policy", str(policy)], guest_env("help"))
    request.addfinalizer(lambda: forget_policy_cache(policy))

    def one(index: int) -> int:
        env = {"SSH_CONNECTION": f"192.0.2.{index % 250 + 1} {30000 + index} 127.0.0.1 22"}
        return connect(accounts.guest, policy, "attach shared", tty, **env).returncode

    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(one, range(500)))
    assert codes == [0] * 500
    connects = gktest.wait_until(
        lambda: (
            r
            if len(
                r := journal.messages(f"GATEKEEPER_USER={accounts.guest.name}", f"--since={since}")
            )
            >= 500
            else None
        ),
        30,
        "500 connect records",
    )
    connects = [r for r in connects if r.get("session") == "shared"]
    assert len(connects) == 500
    assert {r["decision"] for r in connects} == {"allow"}

    # The host's hooks: a join and a leave per connection, keyed by client_pid = pid.
    endings = ("detached", "kicked", "expired", "server-exit")
    expected: dict[int, tuple[float | None, str]] = {}
    host_lines = []
    for index, record in enumerate(sorted(connects, key=lambda r: r["client_port"])):
        base = {
            "decision": "allow",
            "user": accounts.guest.name,
            "uid": accounts.guest.uid,
            "session": "shared",
            "mode": "read-only",
            "client_pid": record["pid"],
            "by": accounts.host.name,
        }
        host_lines.append({**base, "event": "join"})
        if index >= 490:
            expected[record["pid"]] = (None, "attached")  # still on: no leave yet
            continue
        leave = {**base, "event": "leave", "ended": endings[index % 4]}
        if index >= 480:
            expected[record["pid"]] = (-1.0, endings[index % 4])  # no duration: from times
        else:
            leave["duration_seconds"] = 60 * index + 7
            expected[record["pid"]] = (60.0 * index + 7, endings[index % 4])
        host_lines.append(leave)
    writer = gktest.run_as(
        accounts.host,
        [str(gktest.PYTHON), "-I", "-c", HOST_WRITER, journal.socket],
        {"PATH": "/usr/bin:/bin"},
        input="".join(json.dumps(r) + "\n" for r in host_lines).encode(),
        timeout=120,
    )
    assert writer.returncode == 0, writer.stderr
    journal.wait_for("GATEKEEPER_EVENT=leave", f"--since={since}", count=490, timeout=30)

    started = time.monotonic()
    result = ctl(journal, "--sessions", "--json", "--since", since, "--session", "shared",
                 policy=policy)  # fmt: skip
    sessions = json_lines(result)
    assert time.monotonic() - started < 30
    assert len(sessions) == 500
    assert {s["trust"] for s in sessions} == {"trusted"}, {s["trust_reason"] for s in sessions}
    for visit in sessions:
        duration, ended = expected[visit["pid"]]
        assert visit["ended"] == ended
        assert visit["user"] == accounts.guest.name
        assert visit["mode"] == "read-only"
        assert visit["client_addr"].startswith("192.0.2.")
        if duration is None:
            assert visit["duration_seconds"] is None
        elif duration < 0:
            assert 0 <= visit["duration_seconds"] < 30
        else:
            assert visit["duration_seconds"] == duration

    # The admin's view: one line per visit, with a human duration.
    table = ctl(journal, "--sessions", "--since", since, "--session", "shared", policy=policy)
    lines = table.stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["START", "TRUST", "USER"]
    assert len(lines) == 501
    longest = 60 * 479 + 7
    hours, rest = divmod(longest, 3600)
    assert any(f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" in line for line in lines)
    # All 1500 records parse; none is flagged.
    records = json_lines(
        ctl(journal, "--json", "--since", since, "--session", "shared", policy=policy)
    )
    assert len(records) == 500 + 500 + 490
    assert {r["trust"] for r in records} == {"trusted"}


def test_a_leave_forged_by_a_non_owner_is_flagged_in_the_session(
    accounts, host_session, write_policy, journal, tty
) -> None:
    since = since_now()
    policy = write_policy(
        SESSION.format(
            socket=host_session.socket, owner=accounts.host.name, user=accounts.guest.name
        )
    )
    result = connect(accounts.guest, policy, "attach shared", tty)
    assert result.returncode == 0
    (record,) = [
        r
        for r in journal.messages(f"GATEKEEPER_USER={accounts.guest.name}", f"--since={since}")
        if r.get("session") == "shared"
    ]
    join = {
        "event": "join",
        "decision": "allow",
        "user": accounts.guest.name,
        "uid": accounts.guest.uid,
        "session": "shared",
        "client_pid": record["pid"],
    }
    writer = gktest.run_as(
        accounts.host,
        [str(gktest.PYTHON), "-I", "-c", HOST_WRITER, journal.socket],
        {"PATH": "/usr/bin:/bin"},
        input=(json.dumps(join) + "\n").encode(),
    )
    assert writer.returncode == 0, writer.stderr
    # The guest itself pretends it left after one second (it stayed for hours).
    fake_id = f"fakeleave{secrets.token_hex(5)}"
    leave = {**join, "event": "leave", "ended": "detached", "duration_seconds": 1,
             "connection_id": fake_id}  # fmt: skip
    sender = forge(accounts.guest, journal, leave)
    wait_sent(sender)
    finish(sender)
    journal.wait_for(f"GATEKEEPER_CONNECTION_ID={fake_id}")
    journal.wait_for("GATEKEEPER_EVENT=join", f"--since={since}")
    visits = json_lines(ctl(journal, "--sessions", "--json", "--since", since, policy=policy))
    real = [v for v in visits if v["trust"] == "trusted"]
    fake = [v for v in visits if v["trust"] == "forged"]
    # The real visit is not ended by the forged leave; the forgery shows on its own line.
    assert [(v["pid"], v["ended"], v["duration_seconds"]) for v in real] == [
        (record["pid"], "attached", None)
    ]
    assert len(fake) == 1
    assert f"owned by uid {accounts.host.uid}" in fake[0]["trust_reason"]
    assert fake[0]["duration_seconds"] == 1
    table = ctl(journal, "--sessions", "--since", since, policy=policy).stdout.decode()
    assert [line.split()[2] for line in table.splitlines()[1:]] == ["ok", "FORGED"]
    trusted = ctl(
        journal, "--sessions", "--json", "--trusted-only", "--since", since, policy=policy
    )
    assert [v["ended"] for v in json_lines(trusted)] == ["attached"]
