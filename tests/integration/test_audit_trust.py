"""The trust rules and the session join, as tables (no journald needed: pure functions).

The metadata below is what journald attaches (``_UID``, ``_PID``, ``_EXE``,
``_CMDLINE``); the journald tests prove it is what a real journald attaches.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.login.audit import MESSAGE_IDS
from gatekeeper.review import auditread
from gatekeeper.review.auditlog import time_values
from gatekeeper.review.auditread import Entry, Filters, Trust

PYTHON = str(Path(sys.executable).resolve())
LAUNCHER = "/usr/bin/gatekeeper"
CONFIG = auditread.TrustConfig(
    launchers=frozenset({LAUNCHER}),
    interpreters=frozenset({PYTHON}),
    owners={"shared": 1000},
    targets=frozenset({"/usr/bin/tmux", "/bin/true"}),
)
CONNECT = {"event": "connect", "decision": "allow", "uid": 1001, "pid": 4242}
ATTACH = {**CONNECT, "session": "shared", "argv": ["/usr/bin/tmux", "-N", "-S", "/s", "attach"]}
JOIN = {"event": "join", "decision": "allow", "session": "shared", "client_pid": 4242}
RUN = f"/usr/bin/python3 -I {LAUNCHER} --policy /etc/gatekeeper.toml"


def meta(uid: str, pid: str, exe: str | None = None, cmdline: str | None = None) -> dict[str, Any]:
    fields = {"_UID": uid, "_PID": pid, "_EXE": exe, "_CMDLINE": cmdline}
    return {k: v for k, v in fields.items() if v is not None}


TMUX_RUN = "/usr/bin/tmux -N -S /s attach"


@dataclass(frozen=True)
class Case:
    name: str
    record: dict[str, Any]
    meta: dict[str, Any]
    trust: str
    why: str = ""


CASES = [
    Case("launcher", CONNECT, meta("1001", "4242", PYTHON, RUN), "trusted"),
    Case("exited before journald looked", CONNECT, meta("1001", "4242"), "trusted", "exited"),
    Case("after exec of tmux", ATTACH,
         meta("1001", "4242", "/usr/bin/tmux", TMUX_RUN),
         "trusted", "exec'd"),
    Case("exe read before exec, cmdline after", ATTACH, meta("1001", "4242", PYTHON, TMUX_RUN),
         "trusted", "exec'd"),
    Case("exe after exec, cmdline before: impossible", ATTACH,
         meta("1001", "4242", "/usr/bin/tmux", RUN), "forged", "not the gatekeeper launcher"),
    Case("another uid", CONNECT, meta("1002", "4242", PYTHON, RUN),
         "forged", "sent by uid 1002"),
    Case("another pid", CONNECT, meta("1001", "9", PYTHON, RUN),
         "forged", "sent by pid 9"),
    Case("python -c", CONNECT,
         {"_UID": "1001", "_PID": "4242", "_EXE": PYTHON, "_CMDLINE": "/usr/bin/python3 -c x"},
         "forged", "not the gatekeeper launcher"),
    Case("logger", CONNECT, {"_UID": "1001", "_PID": "4242", "_EXE": "/usr/bin/logger"},
         "forged", "/usr/bin/logger"),
    Case("claims to have exec'd the interpreter", {**CONNECT, "argv": [PYTHON, "-c", "x"]},
         {"_UID": "1001", "_PID": "4242", "_EXE": PYTHON, "_CMDLINE": f"{PYTHON} -c x"},
         "forged", "not the gatekeeper launcher"),
    Case("exec target the policy does not name", {**CONNECT, "argv": ["/bin/sleep", "9"]},
         {"_UID": "1001", "_PID": "4242", "_EXE": "/usr/bin/sleep", "_CMDLINE": "/bin/sleep 9"},
         "forged", "not the gatekeeper launcher"),
    Case("wrong MESSAGE_ID", CONNECT,
         {"_UID": "1001", "_PID": "4242", "MESSAGE_ID": MESSAGE_IDS["connect-deny"]},
         "forged", "MESSAGE_ID"),
    Case("join by the owner", JOIN, {"_UID": "1000", "_PID": "77", "_EXE": PYTHON}, "trusted"),
    Case("join by root", JOIN, {"_UID": "0", "_PID": "77"}, "trusted"),
    Case("join by someone else", JOIN, {"_UID": "1001", "_PID": "77", "_EXE": PYTHON},
         "forged", "owned by uid 1000"),
    Case("join via logger", JOIN, {"_UID": "1000", "_PID": "77", "_EXE": "/usr/bin/logger"},
         "forged", "not gatekeeperctl"),
    Case("join of a session no policy names", {**JOIN, "session": "other"},
         {"_UID": "1000", "_PID": "77"}, "unverified", "unknown"),
    Case("unknown event", {"event": "party"}, meta("0", "1"), "forged", "unknown event"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_trust(case: Case) -> None:
    trust, why = auditread.check(case.record, case.meta, CONFIG)
    assert trust == case.trust, why
    assert case.why in why


T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def entry(record: dict[str, Any], seconds: float, trust: Trust = "trusted") -> Entry:
    return Entry(record, T0 + timedelta(seconds=seconds), "journal", trust)


def test_a_reused_pid_joins_the_latest_earlier_connect() -> None:
    first = entry({**ATTACH, "connection_id": "a"}, 0)
    second = entry({**ATTACH, "connection_id": "b"}, 100)
    visits = auditread.join_sessions(
        [
            first,
            entry(JOIN, 1),
            entry({**JOIN, "event": "leave", "ended": "detached"}, 31),
            second,
            entry(JOIN, 101),
            entry({**JOIN, "event": "leave", "ended": "kicked", "duration_seconds": 5}, 106),
        ]
    )
    summary = [(v.field("connection_id"), v.duration, v.ended) for v in visits]
    assert summary == [("a", 30.0, "detached"), ("b", 5.0, "kicked")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T09:00:00+00:00", datetime(2026, 11, 26, 9, tzinfo=UTC)),
        ("@1795680000", datetime.fromtimestamp(1795680000, UTC)),
        ("-2h", T0 - timedelta(hours=2)),
        ("3d ago", T0 - timedelta(days=3)),
        ("+30m", T0 + timedelta(minutes=30)),
        ("yesterday", T0.replace(hour=0) - timedelta(days=1)),
    ],
)
def test_time_words(text: str, expected: datetime) -> None:
    assert auditread.parse_time(text, now=T0) == expected


def test_an_unreadable_time_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        auditread.parse_time("last tuesday", now=T0)


LEAVE = {**JOIN, "event": "leave", "ended": "detached"}


def visit_records(index: int, pid: int, start: float) -> list[Entry]:
    connect = {**ATTACH, "pid": pid, "connection_id": f"v{index}"}
    join = {**JOIN, "client_pid": pid}
    return [
        entry(connect, start),
        entry(join, start + 1),
        entry({**LEAVE, "client_pid": pid}, start + 2),
    ]


def test_sessions_of_a_long_journal_hold_only_open_visits() -> None:
    """20,000 visits stream through; the joiner never holds more than one at a time."""
    joiner = auditread.SessionJoiner()
    most = 0
    done = 0
    for index in range(20_000):
        for record in visit_records(index, 1000 + index % 7, index * 10.0):
            joiner.feed(record)
            most = max(most, joiner.held)
        done += len(list(joiner.drain()))
    joiner.finish()
    done += len(list(joiner.drain(final=True)))
    assert done == 20_000
    assert most <= 1


def test_sessions_come_out_in_start_order_when_a_long_one_ends_last() -> None:
    long_visit = visit_records(0, 11, 0.0)
    short_visit = visit_records(1, 22, 5.0)
    stream = [long_visit[0], long_visit[1], *short_visit, long_visit[2]]
    order = [v.field("connection_id") for v in auditread.stream_sessions(stream, Filters())]
    assert order == ["v0", "v1"]


def test_a_pid_reused_before_any_leave_ends_the_earlier_visit() -> None:
    first = visit_records(0, 33, 0.0)[:2]  # connect and join, no leave
    second = visit_records(1, 33, 100.0)
    visits = list(auditread.stream_sessions([*first, *second], Filters()))
    assert [(v.field("connection_id"), v.ended) for v in visits] == [
        ("v0", "no-leave-record"),
        ("v1", "detached"),
    ]


def test_a_connect_without_a_join_is_let_go_after_the_grace() -> None:
    lonely = entry({**ATTACH, "pid": 44, "connection_id": "lonely"}, 0)
    later = visit_records(1, 55, 600.0)
    joiner = auditread.SessionJoiner()
    for record in [lonely, *later]:
        joiner.feed(record)
    out = [(v.field("connection_id"), v.ended) for v in joiner.drain()]
    assert out == [("lonely", "no-join-record"), ("v1", "detached")]


def test_filters_become_journalctl_matches() -> None:
    filters = Filters(user="pair", person="bob\x1b", decision="deny", events=("connect",))
    assert filters.matches() == [
        "GATEKEEPER_USER=pair",
        "GATEKEEPER_PERSON=bob\\x1b",
        "GATEKEEPER_DECISION=deny",
        "GATEKEEPER_EVENT=connect",
    ]
    # --sessions: only what connect, join and leave all carry; no event match.
    assert filters.matches(sessions=True) == ["GATEKEEPER_USER=pair"]


def test_a_native_field_that_disagrees_with_the_message_is_forged() -> None:
    record = {**CONNECT, "user": "pair"}
    line = json.dumps(
        {"MESSAGE": json.dumps(record), "_UID": "1001", "_PID": "4242",
         "GATEKEEPER_USER": "admin"}
    )  # fmt: skip
    found = auditread.from_journal(line, CONFIG)
    assert found is not None
    assert (found.trust, found.why) == ("forged", "GATEKEEPER_USER disagrees with the record")
    # CONTROL: the same record with an agreeing native field is trusted.
    agreeing = json.loads(line) | {"GATEKEEPER_USER": "pair"}
    assert auditread.from_journal(json.dumps(agreeing), CONFIG).trust == "trusted"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["audit", "--since", "-3min"], ["audit", "--since=-3min"]),
        (["audit", "--until", "-1h", "--json"], ["audit", "--until=-1h", "--json"]),
        (["audit", "--since", "--user", "x"], ["audit", "--since", "--user", "x"]),
        (["audit", "--since", "today"], ["audit", "--since", "today"]),
        (["audit", "--", "--since", "-3min"], ["audit", "--", "--since", "-3min"]),
    ],
)
def test_relative_times_after_a_space(argv: list[str], expected: list[str]) -> None:
    assert time_values(argv) == expected


def test_a_narrow_sessions_filter_reads_connects_then_only_their_accounts() -> None:
    """``--sessions --person bob``: two indexed queries, not the whole journal."""
    bob = {**ATTACH, "user": "pair", "person": "bob", "connection_id": "b1"}
    carol = {**ATTACH, "user": "pair", "person": "carol", "pid": 5151, "connection_id": "c1"}
    journal = [
        entry(bob, 0),
        entry(carol, 1),
        entry({**JOIN, "user": "pair"}, 2),
        entry({**JOIN, "user": "pair", "client_pid": 5151}, 3),
        entry({**LEAVE, "user": "pair"}, 10),
        entry({**LEAVE, "user": "pair", "client_pid": 5151}, 20),
        entry({**JOIN, "user": "other", "client_pid": 9}, 30),
    ]
    asked: list[list[str]] = []

    def read(matches, since):
        asked.append(list(matches))
        native = {"user": "GATEKEEPER_USER", "person": "GATEKEEPER_PERSON",
                  "event": "GATEKEEPER_EVENT"}  # fmt: skip
        for found in journal:
            if since is not None and found.time < since:
                continue
            fields = {f"{native[k]}={v}" for k, v in found.record.items() if k in native}
            by_field: dict[str, set[str]] = {}
            for match in matches:
                by_field.setdefault(match.split("=")[0], set()).add(match)
            if all(fields & wanted for wanted in by_field.values()):
                yield found

    filters = Filters(person="bob")
    entries = auditread.targeted_session_entries(read, filters)
    assert entries is not None
    visits = list(auditread.stream_sessions(entries, filters))
    assert [(v.field("person"), v.ended, v.duration) for v in visits] == [("bob", "detached", 8.0)]
    assert asked == [
        ["GATEKEEPER_PERSON=bob", "GATEKEEPER_EVENT=connect"],
        ["GATEKEEPER_EVENT=join", "GATEKEEPER_EVENT=leave", "GATEKEEPER_USER=pair"],
    ]
