"""Escaping untrusted text to printable ASCII (SECURITY.md §9, §25; LOG-03, LOG-08)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from gatekeeper.login.textsafe import escape, escape_bytes


class Case(NamedTuple):
    id: str
    raw: bytes
    escaped: str


CASES = [
    Case("plain", b"attach shared", "attach shared"),
    Case("empty", b"", ""),
    Case("backslash-doubled", b"a\\x1b", "a\\\\x1b"),
    Case("esc-osc-title", b"\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    Case("newline-tab-cr", b"a\nb\tc\r", "a\\x0ab\\x09c\\x0d"),
    Case("nul", b"\x00", "\\x00"),
    Case("del", b"\x7f", "\\x7f"),
    Case("c1-csi", "\u009b2J".encode(), "\\x9b2J"),
    Case("nbsp", "a\u00a0b".encode(), "a\\xa0b"),
    Case("bidi-override", "\u202eabc".encode(), "\\u202eabc"),
    Case("line-separator", "\u2028".encode(), "\\u2028"),
    Case("astral", "\U0001f600".encode(), "\\U0001f600"),
    Case("invalid-utf8", b"\xff\xfe", "\\xff\\xfe"),
    Case("truncated-utf8", b"caf\xc3", "caf\\xc3"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_escape_bytes(case: Case) -> None:
    out = escape_bytes(case.raw)
    assert out == case.escaped
    assert all(0x20 <= ord(ch) < 0x7F for ch in out)


def test_escape_of_str_matches_bytes_for_valid_utf8() -> None:
    text = "x\x1b[2J\u202e\\"
    assert escape(text) == escape_bytes(text.encode())


def test_a_lone_surrogate_that_is_not_a_byte_is_escaped() -> None:
    assert escape("\ud800") == "\\ud800"
