"""The exact argv and environment to exec (SPEC §1, §4; SECURITY.md §17-20)."""

from __future__ import annotations

from typing import NamedTuple

import gkunit
import pytest

from gatekeeper.login import request as rq
from gatekeeper.login.decide import AttachSession, RunProgram, decide
from gatekeeper.login.plan import SAFE_TERM, environment, plan, safe_term
from gatekeeper.policy.model import Grant, Policy, Program, Session

POLICY = Policy(
    tmux_binary="/opt/tmux/bin/tmux",
    sessions={
        "shared": Session("shared", "/var/tmux/pair_sock", "alice", "shared"),
        # The name guests type and the tmux session name differ on purpose.
        "demo": Session("demo", "/run/gk/demo.sock", "alice", "host-demo_1"),
    },
    programs={
        "editor": Program("editor", ("/usr/bin/vim", "-Z", "-u", "DEFAULTS", "--", "/my_project")),
        "pager": Program("pager", ("/usr/bin/less", "--", "/my project/README; id")),
    },
    grants=(
        Grant(0, users=frozenset({"pair"}), session="shared", mode="read-only"),
        Grant(1, users=frozenset({"pair"}), session="demo", mode="read-write"),
        Grant(2, users=frozenset({"pair"}), program="editor"),
        Grant(3, users=frozenset({"pair"}), program="pager"),
    ),
)


class ArgvCase(NamedTuple):
    id: str
    command: bytes
    path: str
    argv: tuple[str, ...]


TMUX = "/opt/tmux/bin/tmux"
ARGV = [
    ArgvCase(
        "attach-read-only",
        b"attach shared",
        TMUX,
        (TMUX, "-N", "-S", "/var/tmux/pair_sock", "attach-session", "-E", "-r", "-t", "=shared"),
    ),
    ArgvCase(
        "attach-read-write-uses-policy-target",
        b"attach demo",
        TMUX,
        (TMUX, "-N", "-S", "/run/gk/demo.sock", "attach-session", "-E", "-t", "=host-demo_1"),
    ),
    ArgvCase(
        "watch-adds-r",
        b"watch demo",
        TMUX,
        (TMUX, "-N", "-S", "/run/gk/demo.sock", "attach-session", "-E", "-r", "-t", "=host-demo_1"),
    ),
    ArgvCase(
        "program-verbatim",
        b"run editor",
        "/usr/bin/vim",
        ("/usr/bin/vim", "-Z", "-u", "DEFAULTS", "--", "/my_project"),
    ),
    ArgvCase(
        "program-argv-is-never-split-or-expanded",
        b"run pager",
        "/usr/bin/less",
        ("/usr/bin/less", "--", "/my project/README; id"),
    ),
]


@pytest.mark.parametrize("case", ARGV, ids=[c.id for c in ARGV])
def test_exact_argv(case: ArgvCase) -> None:
    connection = gkunit.connection()
    decision = decide(connection, rq.parse(case.command), POLICY, gkunit.NOW)
    assert isinstance(decision, AttachSession | RunProgram)
    exe = plan(decision, POLICY, connection)
    assert exe.path == case.path
    assert exe.argv == case.argv


def test_same_decision_same_plan() -> None:
    connection = gkunit.connection()
    decision = decide(connection, rq.Attach("shared"), POLICY, gkunit.NOW)
    assert isinstance(decision, AttachSession)
    assert plan(decision, POLICY, connection) == plan(decision, POLICY, connection)


def test_environment_is_built_from_scratch() -> None:
    connection = gkunit.connection(user="pair", home="/srv/guests/pair", term="screen-256color")
    assert environment(connection) == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/srv/guests/pair",
        "USER": "pair",
        "LOGNAME": "pair",
        "LANG": "C.UTF-8",
        "TERM": "screen-256color",
        "SHELL": "/bin/false",
        "LESSSECURE": "1",
    }


def test_plan_carries_the_clean_environment() -> None:
    connection = gkunit.connection()
    decision = decide(connection, rq.Run("editor"), POLICY, gkunit.NOW)
    assert isinstance(decision, RunProgram)
    assert dict(plan(decision, POLICY, connection).env) == environment(connection)


class TermCase(NamedTuple):
    id: str
    term: str | None
    expected: str


TERMS = [
    TermCase("plain", "xterm-256color", "xterm-256color"),
    TermCase("all-allowed-characters", "rxvt.unicode+x_1-2", "rxvt.unicode+x_1-2"),
    TermCase("64-chars", "x" * 64, "x" * 64),
    TermCase("65-chars", "x" * 65, SAFE_TERM),
    TermCase("unset", None, SAFE_TERM),
    TermCase("empty", "", SAFE_TERM),
    TermCase("osc-title-escape", "xterm\x1b]0;OWNED\x07", SAFE_TERM),
    TermCase("trailing-newline", "xterm\n", SAFE_TERM),
    TermCase("space", "xterm 256", SAFE_TERM),
    TermCase("shell-metachar", "xterm;id", SAFE_TERM),
    TermCase("path", "../../tmp/evil", SAFE_TERM),
    TermCase("non-ascii", "xt\u00e9rm", SAFE_TERM),
    TermCase("invalid-utf8-surrogate", "xterm\udcff", SAFE_TERM),
]


@pytest.mark.parametrize("case", TERMS, ids=[c.id for c in TERMS])
def test_term_validation(case: TermCase) -> None:
    assert safe_term(case.term) == case.expected
    assert environment(gkunit.connection(term=case.term))["TERM"] == case.expected
