"""Guest-facing lines are an interface (STYLE.md rule 4): pinned by exact strings."""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest

from gatekeeper.login import messages

REF = "0123456789abcdef"


class Line(NamedTuple):
    id: str
    template: str
    name: str
    expected: str


LINES = [
    Line(
        "denied",
        messages.DENIED,
        "",
        "gatekeeper: access denied (ref 0123456789abcdef). Run 'list' to see what you may use.\n",
    ),
    Line(
        "bad-request",
        messages.BAD_REQUEST,
        "",
        "gatekeeper: request not understood (ref 0123456789abcdef). Run 'help' for usage.\n",
    ),
    Line(
        "need-tty",
        messages.NEED_TTY,
        "",
        "gatekeeper: this needs a terminal: connect with 'ssh -t' (ref 0123456789abcdef).\n",
    ),
    Line(
        "not-running",
        messages.NOT_RUNNING,
        "shared",
        "gatekeeper: session 'shared' is not running or not shared with you "
        "(ref 0123456789abcdef).\n",
    ),
    Line(
        "unavailable",
        messages.UNAVAILABLE,
        "",
        "gatekeeper: service unavailable, contact the administrator (ref 0123456789abcdef).\n",
    ),
]


@pytest.mark.parametrize("case", LINES, ids=[c.id for c in LINES])
def test_exact_line(case: Line) -> None:
    text = messages.line(case.template, ref=REF, name=case.name)
    assert text == case.expected
    assert text.count("\n") == 1
    assert all(0x20 <= ord(ch) < 0x7F for ch in text.rstrip("\n"))
    assert len(text) <= 100


def test_templates_take_only_ref_and_name() -> None:
    for case in LINES:
        assert set(re.findall(r"\{(\w*)\}", case.template)) <= {"ref", "name"}


def test_help_names_every_verb() -> None:
    for verb in (
        "attach SESSION",
        "watch SESSION",
        "run PROGRAM",
        "list [--json]",
        "whoami",
        "help",
    ):
        assert verb in messages.HELP
    assert messages.HELP.isascii()
    assert messages.HELP.endswith("\n")


def test_recording_notice_is_pinned() -> None:
    text = messages.recorded("shared")
    assert text == (
        "gatekeeper: session 'shared' is recorded: everything shown in it is kept with timing.\n"
    )
    assert all(0x20 <= ord(ch) < 0x7F for ch in text.rstrip("\n"))
    assert len(text) <= 100
