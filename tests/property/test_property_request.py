"""Properties of the pure core over arbitrary guest bytes (hypothesis).

Arbitrary ``SSH_ORIGINAL_COMMAND`` bytes never make parse/decide/plan raise,
and nothing the guest typed ever becomes an argv element: every argv that can
come out is one of the few the policy spells.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

import gkunit
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.login import journald
from gatekeeper.login import request as rq
from gatekeeper.login.decide import AttachSession, Deny, Inform, RunProgram, decide
from gatekeeper.login.plan import plan
from gatekeeper.login.textsafe import escape, escape_bytes
from gatekeeper.policy.model import NAME_PATTERN, Connection, Grant, Policy, Program, Session

BOUNDED = settings(max_examples=400, deadline=None, database=None)

POLICY = Policy(
    tmux_binary="/usr/bin/tmux",
    people={"bob": frozenset({"SHA256:" + "b" * 43})},
    sessions={
        "shared": Session("shared", "/var/tmux/pair_sock", "alice", "host-shared"),
        "main": Session("main", "/var/tmux/main.sock", "alice", "main"),
    },
    programs={"editor": Program("editor", ("/usr/bin/vim", "-Z", "--", "/my_project"))},
    grants=(
        Grant(0, users=frozenset({"pair"}), session="shared", default=True),
        Grant(1, groups=frozenset({"tmux_group"}), session="main", mode="read-write"),
        Grant(2, people=frozenset({"bob"}), program="editor"),
    ),
)
TMUX_HEAD = ("/usr/bin/tmux", "-N", "-S")
#: Every argv the policy can produce. Nothing else may ever come out.
POLICY_ARGVS = {
    (*TMUX_HEAD, "/var/tmux/pair_sock", "attach-session", "-E", "-r", "-t", "=host-shared"),
    (*TMUX_HEAD, "/var/tmux/pair_sock", "attach-session", "-E", "-t", "=host-shared"),
    (*TMUX_HEAD, "/var/tmux/main.sock", "attach-session", "-E", "-r", "-t", "=main"),
    (*TMUX_HEAD, "/var/tmux/main.sock", "attach-session", "-E", "-t", "=main"),
    ("/usr/bin/vim", "-Z", "--", "/my_project"),
}

WORDS = [
    b"attach", b"watch", b"run", b"list", b"whoami", b"help", b"--json", b"shared", b"main",
    b"mainframe", b"editor", b"=shared", b"shared;", b"sha", b"\n", b"\x1b]0;x\x07", b"\xff",
    b"'", b"`id`", b"$2", b"%2", b":0.0", b"\xc2\xa0", b"", b" ",
]  # fmt: skip
#: Arbitrary bytes, and sentences built from near-miss words (to reach the allow paths).
COMMANDS = st.one_of(
    st.none(),
    st.binary(max_size=1100),
    st.lists(st.sampled_from(WORDS), max_size=5).map(b" ".join),
    st.text(alphabet=string.printable + "\u00a0\u2028\u202e\uff41", max_size=64).map(str.encode),
)
CONNECTIONS = st.builds(
    gkunit.connection,
    user=st.sampled_from(["pair", "other", "bob"]),
    groups=st.frozensets(st.sampled_from(["tmux_group", "pair", "x"])),
    key_fingerprints=st.lists(st.sampled_from(["SHA256:" + "b" * 43, "junk"]), max_size=2).map(
        tuple
    ),
    client_addr=st.one_of(st.none(), st.sampled_from(["127.0.0.1", "::ffff:10.0.0.1", "x"])),
    has_tty=st.booleans(),
    term=st.one_of(st.none(), st.text(max_size=80)),
)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_NAME = re.compile(NAME_PATTERN)


@BOUNDED
@given(COMMANDS)
def test_parse_is_total_and_strict(raw: bytes | None) -> None:
    request = rq.parse(raw)
    assert isinstance(request, rq.Request)
    if raw is None or isinstance(request, rq.Malformed):
        return
    # Anything that parsed is short, strict printable ASCII...
    assert len(raw) <= rq.MAX_REQUEST_BYTES
    text = raw.decode("ascii")
    assert text.isprintable()
    # ...and a name is exactly one of the words the guest sent.
    if isinstance(request, rq.Attach | rq.Watch):
        assert _NAME.fullmatch(request.session)
        assert request.session in text.split(" ")
    if isinstance(request, rq.Run):
        assert _NAME.fullmatch(request.program)
        assert request.program in text.split(" ")


@BOUNDED
@given(COMMANDS, CONNECTIONS, MOMENTS)
def test_decide_and_plan_never_raise_and_only_emit_policy_argv(
    raw: bytes | None, connection: Connection, now: datetime
) -> None:
    request = rq.parse(raw)
    decision = decide(connection, request, POLICY, now)
    again = decide(connection, request, POLICY, now)
    assert decision == again  # deterministic
    assert isinstance(decision, AttachSession | RunProgram | Inform | Deny)
    if isinstance(decision, Deny):
        assert decision.exit_code in {1, 64}
        return
    if isinstance(decision, AttachSession | RunProgram):
        assert connection.has_tty
        exe = plan(decision, POLICY, connection)
        assert exe.argv in POLICY_ARGVS
        assert exe.path == exe.argv[0]
        if isinstance(request, rq.Watch):
            assert "-r" in exe.argv
        assert set(exe.env) == {
            "PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "SHELL", "LESSSECURE",
        }  # fmt: skip
        assert re.fullmatch(r"[A-Za-z0-9._+-]{1,64}", exe.env["TERM"])


@BOUNDED
@given(st.binary(max_size=600))
def test_escape_output_is_printable_ascii(raw: bytes) -> None:
    out = escape_bytes(raw)
    assert all(0x20 <= ord(ch) < 0x7F for ch in out)
    assert escape(out) == out.replace("\\", "\\\\")  # printable input only doubles backslashes


@BOUNDED
@given(st.dictionaries(st.from_regex(r"\A[A-Z][A-Z0-9_]{0,20}\Z"), st.text(), max_size=6))
def test_journald_framing_round_trips_any_value(fields: dict[str, str]) -> None:
    decoded = gkunit.decode_datagram(journald.encode(fields))
    assert [key for key, _ in decoded] == list(fields)
    assert dict(decoded) == {
        key: value.encode("utf-8", errors="backslashreplace") for key, value in fields.items()
    }
