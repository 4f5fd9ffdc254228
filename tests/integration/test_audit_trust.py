"""The trust rules and the session join, as tables (no journald needed: pure functions).

The metadata below is what journald attaches (``_UID``, ``_PID``, ``_EXE``,
``_CMDLINE``); the journald tests prove it is what a real journald attaches.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper.login.audit import MESSAGE_IDS
from gatekeeper.review import auditread
from gatekeeper.review.auditread import Entry

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


def meta(uid: str, pid: str, exe: str | None = None, cmdline: str | None = None) -> dict:
    fields = {"_UID": uid, "_PID": pid, "_EXE": exe, "_CMDLINE": cmdline}
    return {k: v for k, v in fields.items() if v is not None}


TMUX_RUN = "/usr/bin/tmux -N -S /s attach"


@dataclass(frozen=True)
class Case:
    name: str
    record: dict
    meta: dict
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


def entry(record: dict, seconds: float, trust: str = "trusted") -> Entry:
    return Entry(record, T0 + timedelta(seconds=seconds), "journal", trust)  # type: ignore[arg-type]


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
