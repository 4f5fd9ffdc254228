"""Escaping of untrusted text before it reaches a terminal, a log line or JSON.

Invariant: the output of :func:`escape` and :func:`escape_bytes` is printable
ASCII only (0x20-0x7e). A guest's ESC, OSC 52, bidi overrides, U+2028 or raw
invalid UTF-8 can therefore never reach an admin's terminal through
``journalctl --all`` or ``gatekeeperctl audit`` (SECURITY.md §9, §25).
"""

from __future__ import annotations

_PRINTABLE_LOW = 0x20
_PRINTABLE_HIGH = 0x7E
_SURROGATE_ESCAPE_LOW = 0xDC80
_SURROGATE_ESCAPE_HIGH = 0xDCFF


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch == "\\":
        return "\\\\"
    if _PRINTABLE_LOW <= code <= _PRINTABLE_HIGH:
        return ch
    if _SURROGATE_ESCAPE_LOW <= code <= _SURROGATE_ESCAPE_HIGH:
        # A byte that was not valid UTF-8 (decoded with surrogateescape).
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """Return ``text`` with every character outside printable ASCII escaped.

    Backslash is doubled so the escaping is unambiguous and reversible.
    """
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape_char(ch) for ch in text)


def escape_bytes(raw: bytes) -> str:
    """Escape raw bytes (possibly invalid UTF-8) to printable ASCII."""
    return escape(raw.decode("utf-8", errors="surrogateescape"))
