"""The decision table (SPEC §3 "Decision rules"): pure, total, deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from typing import Any, NamedTuple

import gkunit
import pytest

from gatekeeper.login import request as rq
from gatekeeper.login.decide import (
    AttachSession,
    Decision,
    Deny,
    Entitlement,
    Inform,
    RunProgram,
    decide,
    identify,
)
from gatekeeper.policy.model import Grant, Policy, Program, Session

K_BOB = "SHA256:" + "b" * 43
K_CAROL = "SHA256:" + "c" * 43
K_STRANGER = "SHA256:" + "s" * 43
T1 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 7, 1, 17, 0, tzinfo=UTC)


def users(*names: str) -> frozenset[str]:
    return frozenset(names)


POLICY = Policy(
    people={"bob": frozenset({K_BOB}), "carol": frozenset({K_CAROL})},
    sessions={
        name: Session(name, f"/var/tmux/{name}.sock", "alice", name)
        for name in ("shared", "main", "mainframe", "ops")
    },
    programs={"editor": Program("editor", ("/usr/bin/vim", "-Z", "--", "/my_project"))},
    grants=(
        Grant(0, users=users("pair"), session="shared", mode="read-only", default=True),
        Grant(1, users=users("rw"), session="shared", mode="read-write"),
        Grant(2, groups=users("tmux_group"), session="main"),
        Grant(3, people=users("bob"), session="ops", mode="read-write"),
        Grant(4, users=users("pair"), program="editor"),
        Grant(
            5,
            users=users("office"),
            session="shared",
            from_=(ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")),
        ),
        Grant(6, users=users("temp"), session="shared", not_before=T1, expires=T2),
        Grant(7, users=users("mf"), session="mainframe"),
        Grant(8, groups=users("devs"), session="shared", mode="read-write"),
        Grant(
            9, users=users("mapped"), session="shared", from_=(ip_network("::ffff:10.0.0.0/104"),)
        ),
        Grant(10, users=users("prog"), program="editor", default=True),
        Grant(11, users=users("prog"), session="shared"),
    ),
)


def summary(decision: Decision) -> tuple[Any, ...]:
    """What a user notices: what runs, in which mode, by which grant - or the denial."""
    match decision:
        case AttachSession():
            return ("attach", decision.session, decision.mode, decision.grant.index)
        case RunProgram():
            return ("run", decision.program, decision.grant.index)
        case Inform():
            names = tuple((e.name, e.mode, e.default) for e in decision.entitlements)
            return ("inform", decision.what, names)
        case Deny():
            return ("deny", decision.reason, decision.exit_code)


class Case(NamedTuple):
    id: str
    command: bytes | None
    expected: tuple[Any, ...]
    conn: dict[str, Any] = {}  # noqa: RUF012 - NamedTuple default, never mutated
    now: datetime = gkunit.NOW


NO_GRANT = ("deny", "no_matching_grant", 1)
SOLO = {"user": "solo", "groups": frozenset()}

CASES = [
    # verbs and the default grant
    Case("default-grant", None, ("attach", "shared", "read-only", 0)),
    Case("empty-command-is-default", b"", ("attach", "shared", "read-only", 0)),
    Case("attach", b"attach shared", ("attach", "shared", "read-only", 0)),
    Case("watch", b"watch shared", ("attach", "shared", "read-only", 0)),
    Case("run", b"run editor", ("run", "editor", 4)),
    Case("help", b"help", ("inform", "help", ())),
    Case("whoami", b"whoami", ("inform", "whoami", ())),
    Case(
        "list",
        b"list",
        (
            "inform",
            "list",
            (("main", "read-only", False), ("shared", "read-only", True), ("editor", None, False)),
        ),
    ),
    Case("unknown-command", b"bash", ("deny", "unknown_command", 1)),
    Case("malformed", b"attach shared;", ("deny", "malformed_request", 64)),
    # exact names: no prefixes either way
    Case("main-is-not-mainframe", b"attach mainframe", NO_GRANT),
    Case("mainframe-is-not-main", b"attach main", NO_GRANT, {"user": "mf", "groups": frozenset()}),
    Case(
        "mainframe-exact",
        b"attach mainframe",
        ("attach", "mainframe", "read-only", 7),
        {"user": "mf"},
    ),
    Case("prefix-of-shared", b"attach share", NO_GRANT),
    Case("case-differs", b"attach Shared", NO_GRANT),
    Case("session-not-in-policy", b"attach admin", NO_GRANT),
    Case("session-name-is-not-a-program", b"run shared", ("deny", "no_matching_grant", 1)),
    Case("program-name-is-not-a-session", b"attach editor", NO_GRANT),
    # users / groups / people
    Case(
        "group-member",
        b"attach main",
        ("attach", "main", "read-only", 2),
        {"user": "x", "groups": frozenset({"tmux_group"})},
    ),
    Case(
        "not-a-group-member",
        b"attach main",
        NO_GRANT,
        {"user": "x", "groups": frozenset({"other"})},
    ),
    Case(
        "person-by-key",
        b"attach ops",
        ("attach", "ops", "read-write", 3),
        {"user": "guest", "key_fingerprints": (K_BOB,)},
    ),
    Case(
        "person-by-second-key",
        b"attach ops",
        ("attach", "ops", "read-write", 3),
        {"user": "guest", "key_fingerprints": (K_STRANGER, K_BOB)},
    ),
    Case(
        "unknown-key", b"attach ops", NO_GRANT, {"user": "guest", "key_fingerprints": (K_STRANGER,)}
    ),
    Case(
        "other-person", b"attach ops", NO_GRANT, {"user": "guest", "key_fingerprints": (K_CAROL,)}
    ),
    Case("no-key", b"attach ops", NO_GRANT, {"user": "guest"}),
    Case("user-name-is-not-a-person", b"attach ops", NO_GRANT, {"user": "bob"}),
    # read-only vs read-write
    Case(
        "read-write-grant", b"attach shared", ("attach", "shared", "read-write", 1), {"user": "rw"}
    ),
    Case(
        "watch-never-writes", b"watch shared", ("attach", "shared", "read-only", 1), {"user": "rw"}
    ),
    Case(
        "read-write-wins-over-read-only",
        b"attach shared",
        ("attach", "shared", "read-write", 8),
        {"groups": frozenset({"devs"})},
    ),
    Case(
        "watch-with-both",
        b"watch shared",
        ("attach", "shared", "read-only", 8),
        {"groups": frozenset({"devs"})},
    ),
    Case(
        "default-keeps-default-grant-mode",
        None,
        ("attach", "shared", "read-only", 0),
        {"groups": frozenset({"devs"})},
    ),
    Case(
        "list-shows-most-permissive",
        b"list --json",
        ("inform", "list", (("shared", "read-write", True), ("editor", None, False))),
        {"groups": frozenset({"devs"})},
    ),
    # the default: default grant / single grant / list
    Case(
        "single-grant-without-default",
        None,
        ("attach", "shared", "read-write", 1),
        {"user": "rw", "groups": frozenset()},
    ),
    Case("default-program", None, ("run", "editor", 10), {"user": "prog"}),
    Case("no-grant-lists-nothing", None, ("inform", "list", ()), SOLO),
    Case(
        "several-grants-no-default-lists",
        None,
        ("inform", "list", (("main", "read-only", False), ("ops", "read-write", False))),
        {"user": "x", "groups": frozenset({"tmux_group"}), "key_fingerprints": (K_BOB,)},
    ),
    # from
    Case(
        "from-inside",
        b"attach shared",
        ("attach", "shared", "read-only", 5),
        {"user": "office", "client_addr": "10.1.2.3"},
    ),
    Case(
        "from-outside", b"attach shared", NO_GRANT, {"user": "office", "client_addr": "192.0.2.1"}
    ),
    Case(
        "from-ipv6-inside",
        b"attach shared",
        ("attach", "shared", "read-only", 5),
        {"user": "office", "client_addr": "2001:db8::7"},
    ),
    Case(
        "from-ipv4-mapped",
        b"attach shared",
        ("attach", "shared", "read-only", 5),
        {"user": "office", "client_addr": "::ffff:10.1.2.3"},
    ),
    Case(
        "from-ipv4-mapped-outside",
        b"attach shared",
        NO_GRANT,
        {"user": "office", "client_addr": "::ffff:192.0.2.1"},
    ),
    Case(
        "mapped-range-ipv4-client",
        b"attach shared",
        ("attach", "shared", "read-only", 9),
        {"user": "mapped", "client_addr": "10.9.9.9"},
    ),
    Case(
        "mapped-range-mapped-client",
        b"attach shared",
        ("attach", "shared", "read-only", 9),
        {"user": "mapped", "client_addr": "::ffff:10.9.9.9"},
    ),
    Case(
        "mapped-range-outside",
        b"attach shared",
        NO_GRANT,
        {"user": "mapped", "client_addr": "11.0.0.1"},
    ),
    Case(
        "from-unknown-address", b"attach shared", NO_GRANT, {"user": "office", "client_addr": None}
    ),
    Case(
        "from-garbage-address",
        b"attach shared",
        NO_GRANT,
        {"user": "office", "client_addr": "10.1.2.3 x"},
    ),
    # time window: not_before inclusive, expires exclusive
    Case(
        "before-not-before",
        b"attach shared",
        NO_GRANT,
        {"user": "temp"},
        T1 - timedelta(microseconds=1),
    ),
    Case(
        "at-not-before",
        b"attach shared",
        ("attach", "shared", "read-only", 6),
        {"user": "temp"},
        T1,
    ),
    Case(
        "just-before-expiry",
        b"attach shared",
        ("attach", "shared", "read-only", 6),
        {"user": "temp"},
        T2 - timedelta(microseconds=1),
    ),
    Case("at-expiry", b"attach shared", NO_GRANT, {"user": "temp"}, T2),
    Case(
        "other-timezone",
        b"attach shared",
        NO_GRANT,
        {"user": "temp"},
        datetime.fromisoformat("2026-07-01T10:59:59+02:00"),
    ),
    # terminals
    Case("attach-needs-tty", b"attach shared", ("deny", "needs_tty", 64), {"has_tty": False}),
    Case("run-needs-tty", b"run editor", ("deny", "needs_tty", 64), {"has_tty": False}),
    Case("default-needs-tty", None, ("deny", "needs_tty", 64), {"has_tty": False}),
    Case(
        "list-without-tty",
        b"list",
        (
            "inform",
            "list",
            (("main", "read-only", False), ("shared", "read-only", True), ("editor", None, False)),
        ),
        {"has_tty": False},
    ),
    Case("whoami-without-tty", b"whoami --json", ("inform", "whoami", ()), {"has_tty": False}),
    Case("denial-wins-over-tty", b"attach nope", NO_GRANT, {"has_tty": False}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decision(case: Case) -> None:
    connection = gkunit.connection(**case.conn)
    decision = decide(connection, rq.parse(case.command), POLICY, case.now)
    assert summary(decision) == case.expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_input_same_decision(case: Case) -> None:
    connection = gkunit.connection(**case.conn)
    first = decide(connection, rq.parse(case.command), POLICY, case.now)
    again = decide(gkunit.connection(**case.conn), rq.parse(case.command), POLICY, case.now)
    assert first == again


def test_explain_can_skip_the_terminal_check() -> None:
    connection = gkunit.connection(has_tty=False)
    decision = decide(connection, rq.Attach("shared"), POLICY, gkunit.NOW, require_tty=False)
    assert summary(decision) == ("attach", "shared", "read-only", 0)


def test_decide_is_total_a_naive_clock_is_an_error_not_an_exception() -> None:
    naive = datetime(2026, 7, 1, 12, 0)  # noqa: DTZ001 - the point of the test
    decision = decide(gkunit.connection(user="temp"), rq.Attach("shared"), POLICY, naive)
    assert isinstance(decision, Deny)
    assert (decision.reason, decision.exit_code) == ("internal_error", 70)


def test_empty_policy_denies_everything() -> None:
    for command in (b"attach shared", b"run editor", b"watch shared"):
        decision = decide(gkunit.connection(), rq.parse(command), Policy(), gkunit.NOW)
        assert summary(decision) == NO_GRANT


def test_a_grant_naming_a_missing_session_matches_nothing() -> None:
    """The policy loader refuses such a file; the pure core still never indexes blindly."""
    policy = Policy(grants=(Grant(0, users=users("pair"), session="ghost", default=True),))
    assert summary(decide(gkunit.connection(), rq.Default(), policy, gkunit.NOW)) == (
        "inform",
        "list",
        (),
    )


class Who(NamedTuple):
    id: str
    keys: tuple[str, ...]
    person: str | None
    fingerprint: str | None


WHO = [
    Who("no-key", (), None, None),
    Who("known-key", (K_BOB,), "bob", K_BOB),
    Who("unknown-key", (K_STRANGER,), None, K_STRANGER),
    Who("first-known-key-wins", (K_STRANGER, K_CAROL, K_BOB), "carol", K_CAROL),
]


@pytest.mark.parametrize("case", WHO, ids=[c.id for c in WHO])
def test_identify(case: Who) -> None:
    identity = identify(gkunit.connection(key_fingerprints=case.keys), POLICY)
    assert (identity.user, identity.person, identity.key_fingerprint) == (
        "pair",
        case.person,
        case.fingerprint,
    )


def test_entitlement_shape() -> None:
    decision = decide(gkunit.connection(), rq.ListTargets(), POLICY, gkunit.NOW)
    assert isinstance(decision, Inform)
    assert decision.entitlements[0] == Entitlement("session", "main", "read-only", default=False)
