"""``gatekeeperctl check`` and ``explain`` (SPEC §6): like ``visudo -c`` and ``sshd -T``."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple

import gkunit
import pytest

from gatekeeper.cli import main as cli
from gatekeeper.login import entry as connect
from gatekeeper.login import request as rq
from gatekeeper.login.decide import AttachSession, RunProgram, decide
from gatekeeper.login.plan import plan
from gatekeeper.policy import check, explain
from gatekeeper.policy.loader import Problem, load

ME = pwd.getpwuid(os.getuid()).pw_name
K_BOB = "SHA256:" + "b" * 43
K_CAROL = "SHA256:" + "c" * 43
SEED = gkunit.REPO / "etc" / "gatekeeper.toml"


@pytest.fixture
def policy_dir() -> Iterator[gkunit.PolicyDir]:
    yield from gkunit.policy_dir()


def seed_copy(policy_dir: gkunit.PolicyDir) -> str:
    """etc/gatekeeper.toml, byte for byte, where the file-safety check can pass.

    (A CI checkout may sit under a directory that is not root's; what is
    checked here is the seed's content.)
    """
    return str(policy_dir.write(SEED.read_text(), header=False))


def test_seed_policy_checks_clean_exit_0(
    policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    path = seed_copy(policy_dir)
    assert cli.main(["check", "--no-cache", path]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK: 1 sessions, 1 programs, 2 grants, 0 people" in out
    assert "error" not in out


def test_seed_policy_json(policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--no-cache", "--json", "--policy", seed_copy(policy_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["errors"] == []
    assert data["summary"] == {"sessions": 1, "programs": 1, "grants": 2, "people": 0}


def warning_policy(socket_dir: str) -> str:
    return f"""
[people.bob]
keys = ["{K_BOB}"]
[people.carol]
keys = ["{K_CAROL}"]

[sessions.s]
socket = "{socket_dir}/s.sock"
owner = "{ME}"
target = "s"

[programs.good]
argv = ["/usr/bin/vim", "-Z", "--", "/my_project"]
sandbox = true

[[grant]]
users = ["pair"]
session = "s"
mode = "read-write"
default = true

[[grant]]
people = ["bob"]
session = "s"
mode = "read-only"

[[grant]]
people = ["carol"]
session = "s"
mode = "read-write"

[[grant]]
users = ["pair"]
program = "good"
default = true

[[grant]]
users = ["old"]
program = "good"
expires = 2026-01-01T00:00:00Z
"""


def test_warnings_name_the_dangerous_grants(policy_dir: gkunit.PolicyDir) -> None:
    socket_dir = policy_dir.path / "tmux"
    socket_dir.mkdir(mode=0o770)
    socket_dir.chmod(0o770)
    path = policy_dir.write(warning_policy(str(socket_dir)))
    report = check.check(str(path), now=gkunit.NOW)
    assert report.ok
    assert report.errors == []
    shell_as_owner = (
        f"read-write on 's' gives a shell as '{ME}' "
        "(tmux runs run-shell, new-window, send-keys as the server owner)"
    )
    expected = [
        Problem("grant[0]", shell_as_owner),
        Problem("grant[2]", shell_as_owner),
        Problem("grant[4]", "expired: it no longer allows anything"),
        Problem(
            "sessions.s",
            "people bob, carol get different modes, but the person comes from "
            "SSH_USER_AUTH, which a shared guest account can rewrite: set [identity] "
            'source = "authorized-keys-command" (sshd names the person) or give each '
            "guest their own account",
        ),
        Problem("grant[3]", "a second default for pair: grant[0] wins (first in the file)"),
        Problem(
            "sessions.s.socket",
            f"{socket_dir} is group/world-writable and not sticky: a member can replace "
            "the socket (use 0750, or 1770)",
        ),
    ]
    for problem in expected:
        assert problem in report.warnings
    assert not [w for w in report.warnings if w.path.startswith("programs.")]


def test_warnings_do_not_fail_the_check(
    policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_dir.write(warning_policy(str(policy_dir.path)))
    assert cli.main(["check", "--no-cache", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: warning: grant[0]: read-write on 's'" in out


def test_typo_fails_the_check_naming_the_key(
    policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_dir.write('[[grant]]\nusers = ["pair"]\nprogram = "p"\nform = ["0.0.0.0/0"]\n')
    assert cli.main(["check", "--no-cache", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{path}: error: grant[0].form: unknown key" in out
    assert f"{path}: error: grant[0].program: unknown program 'p'" not in out  # schema first


def test_unsafe_file_reports_modes_and_content(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write("[[grant]]\nform = []\n", mode=0o666)
    report = check.check(str(path))
    assert not report.ok
    assert Problem("", f"unsafe: {path} is writable by group or others") in report.errors
    assert Problem("grant[0].form", "unknown key") in report.errors


def test_missing_file_fails(policy_dir: gkunit.PolicyDir) -> None:
    report = check.check(str(policy_dir.path / "nope.toml"))
    assert report.errors == [Problem("", "no such file")]


# --------------------------------------------------------------------------- explain

EXPLAIN_BODY = f"""
[sessions.shared]
socket = "/var/tmux/pair_sock"
owner = "{ME}"
target = "host-shared"

[programs.hello]
argv = ["/bin/true", "--", "x"]
sandbox = true

[[grant]]
users = ["{ME}"]
session = "shared"
default = true
from = ["192.0.2.0/24"]

[[grant]]
users = ["{ME}"]
session = "shared"
mode = "read-write"
expires = 2026-06-01T12:00:00Z

[[grant]]
users = ["{ME}"]
program = "hello"
"""


class Explained(NamedTuple):
    id: str
    command: str | None
    address: str | None
    at: datetime
    decision: str
    grant: str | None


EXPLAINED = [
    Explained(
        "attach-read-write-before-expiry",
        "attach shared",
        None,
        datetime(2026, 5, 1, tzinfo=UTC),
        "allow",
        "grant[1]",
    ),
    Explained(
        "attach-read-only-after-expiry",
        "attach shared",
        "192.0.2.9",
        gkunit.NOW,
        "allow",
        "grant[0]",
    ),
    Explained(
        "attach-after-expiry-wrong-address",
        "attach shared",
        "198.51.100.1",
        gkunit.NOW,
        "deny",
        None,
    ),
    Explained("watch", "watch shared", None, datetime(2026, 5, 1, tzinfo=UTC), "allow", "grant[1]"),
    Explained("run", "run hello", None, gkunit.NOW, "allow", "grant[2]"),
    Explained("default", None, "192.0.2.9", gkunit.NOW, "allow", "grant[0]"),
    Explained("unknown", "bash", None, gkunit.NOW, "deny", None),
]


@pytest.mark.parametrize("case", EXPLAINED, ids=[c.id for c in EXPLAINED])
def test_explain_gives_the_same_argv_as_the_plan(
    policy_dir: gkunit.PolicyDir, case: Explained
) -> None:
    path = policy_dir.write(EXPLAIN_BODY)
    data = explain.explain(str(path), ME, None, case.address, case.command, case.at)
    assert data["decision"] == case.decision
    assert data.get("grant") == case.grant
    policy = load(str(path))
    connection = explain.connection_for(ME, None, case.address, case.command, tty=True)
    decision = decide(connection, rq.parse(connection.original_command), policy, case.at)
    if isinstance(decision, AttachSession | RunProgram):
        exe = plan(decision, policy, connection)
        assert data["argv"] == list(exe.argv)
        assert data["env"] == dict(exe.env)
    else:
        assert "argv" not in data


def test_explain_exact_tmux_argv(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write(EXPLAIN_BODY)
    data = explain.explain(str(path), ME, None, "192.0.2.9", "attach shared", gkunit.NOW)
    assert data["argv"] == [
        "/usr/bin/tmux", "-N", "-S", "/var/tmux/pair_sock", "attach-session", "-E", "-r",
        "-t", "=host-shared",
    ]  # fmt: skip
    assert data["mode"] == "read-only"


def test_explain_cli_json(policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]) -> None:
    path = policy_dir.write(EXPLAIN_BODY)
    argv = ["explain", "--policy", str(path), "--user", ME, "--command", "run hello", "--json"]
    assert cli.main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["argv"] == ["/bin/true", "--", "x"]
    assert data["program"] == "hello"


def test_explain_cli_without_tty(
    policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_dir.write(EXPLAIN_BODY)
    argv = ["explain", "--policy", str(path), "--user", ME, "--command", "run hello", "--no-tty"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "needs_tty" in out


def test_explain_unknown_user_exits_67(
    policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_dir.write(EXPLAIN_BODY)
    assert cli.main(["explain", "--policy", str(path), "--user", "no-such-user-gk"]) == 67
    assert "no such user" in capsys.readouterr().err


def test_explain_broken_policy_exits_78(
    policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_dir.write("[[grant]]\nform = []\n")
    assert cli.main(["explain", "--policy", str(path), "--user", ME]) == 78
    assert f"{path}: grant[0].form: unknown key" in capsys.readouterr().err


def test_explain_rejects_a_naive_time(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write(EXPLAIN_BODY)
    with pytest.raises(SystemExit) as caught:
        cli.main(["explain", "--policy", str(path), "--user", ME, "--at", "2026-06-01T12:00:00"])
    assert caught.value.code == 2


# --------------------------------------------------------------------------- the host is no guest

HOST_AS_GUEST = """
[sessions.shared]
socket = "/run/gatekeeper/shared/sock"
owner = "alice"
target = "shared"

[[grant]]
users = ["pair", "alice"]
session = "shared"
"""


def test_a_grant_naming_the_session_owner_fails_the_check(
    policy_dir: gkunit.PolicyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """SECURITY.md §30: the host would get the ForceCommand (even before the account exists)."""
    path = policy_dir.write(HOST_AS_GUEST)
    assert cli.main(["check", "--no-cache", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{path}: error: grant[0].users: alice would get the gatekeeper's ForceCommand, "
        "but it owns a session (the host)"
    ) in out
    assert "pair" not in out.split("error:")[1].split("would get")[0]
    # CONTROL: without alice in users the same policy checks clean.
    fixed = policy_dir.write(HOST_AS_GUEST.replace('"pair", "alice"', '"pair"'))
    assert cli.main(["check", "--no-cache", str(fixed)]) == 0


def test_root_in_users_fails_the_check(policy_dir: gkunit.PolicyDir) -> None:
    path = policy_dir.write(HOST_AS_GUEST.replace('"pair", "alice"', '"root"'))
    report = check.check(str(path))
    assert [p.path for p in report.errors] == ["grant[0].users"]
    assert "it is root" in report.errors[0].message


# ------------------------------------------------------------- explain = the record

LIVE_BODY = (
    EXPLAIN_BODY
    + f"""
[programs.gone]
argv = ["/nonexistent/gk-program", "--"]

[[grant]]
users = ["{ME}"]
program = "gone"
"""
)

#: Record fields explain shows (when they have a value), compared with a real run's record.
RECORD_KEYS = ("decision", "reason", "exit_code", "grant", "session", "program", "mode", "argv")


class Live(NamedTuple):
    id: str
    command: str
    live_reason: str  # what the record (and explain --live) says; a prefix
    offline_reason: str  # explain without --live: the decision alone


LIVE = [
    Live("run", "run hello", "granted", "granted"),
    Live("program-missing", "run gone", "program_missing", "granted"),
    # /var/tmux/pair_sock: missing, or under a directory that is not safe here.
    Live("socket", "attach shared", "socket_", "granted"),
    Live("unknown", "bash", "unknown_command", "unknown_command"),
    Live("list", "list", "inform_list", "inform_list"),
]


@pytest.mark.parametrize("case", LIVE, ids=[c.id for c in LIVE])
def test_explain_live_says_what_the_login_record_says(
    policy_dir: gkunit.PolicyDir, case: Live
) -> None:
    path = policy_dir.write(LIVE_BODY)
    before = len(policy_dir.records())
    connect.run(
        ["--policy", str(path)],
        gkunit.environ(case.command.encode()),
        stdin_is_tty=True,
        now=gkunit.NOW,
    )
    (written,) = policy_dir.records()[before:]
    address = "192.0.2.7"  # gkunit.environ's SSH_CONNECTION
    live = explain.explain(str(path), ME, None, address, case.command, gkunit.NOW, live=True)
    offline = explain.explain(str(path), ME, None, address, case.command, gkunit.NOW)
    assert written["reason"].startswith(case.live_reason)
    shown = {k: written[k] for k in RECORD_KEYS if written[k] is not None}
    assert {k: live.get(k) for k in RECORD_KEYS if k in live} == shown
    assert live["policy_sha256"] == written["policy_sha256"]
    assert live["request"] == written["request"]
    assert offline["reason"] == case.offline_reason  # the control: no live checks
