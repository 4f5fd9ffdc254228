"""The guest's request language (SPEC §2): lexing and a fixed grammar.

Invariants, each from a parser differential or a break in a peer
(SECURITY.md §10-11, §18):

* the raw bytes must be strict UTF-8, printable ASCII, at most 1024 bytes;
* words are separated by ASCII space (0x20) only - one tokenizer, no
  ``str.split()`` (NBSP, ``\\x1c``, U+2028) and no ``shlex`` (quote joining);
* quotes, backslashes and shell metacharacters are not part of the grammar;
* names are matched exactly against ``NAME_PATTERN``: no prefixes, no case
  folding, no normalisation, nothing tmux could read as a target expression.

The parser is total: every input maps to exactly one :data:`Request`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from gatekeeper.policy.model import NAME_PATTERN

MAX_REQUEST_BYTES: Final = 1024

_NAME = re.compile(NAME_PATTERN)
#: Characters a well-formed request may contain at all. Everything else that
#: is printable ASCII is a shell or tmux metacharacter and makes the request
#: malformed: ``! " # $ & ' ( ) * ; < > ? [ \\ ] ^ ` { | } ~``.
_ALLOWED_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-./:=,@+%"
)

MalformedReason = Literal[
    "too_long",
    "not_utf8",
    "not_printable_ascii",
    "metacharacter",
    "bad_arguments",
    "bad_name",
]


@dataclass(frozen=True, slots=True)
class Default:
    """No command: the user's default grant (or the list)."""


@dataclass(frozen=True, slots=True)
class Attach:
    """``attach NAME``: the mode the grants give."""

    session: str


@dataclass(frozen=True, slots=True)
class Watch:
    """``watch NAME``: always read-only."""

    session: str


@dataclass(frozen=True, slots=True)
class Run:
    """``run NAME``: one program from the policy."""

    program: str


@dataclass(frozen=True, slots=True)
class ListTargets:
    """``list [--json]``."""

    json: bool = False


@dataclass(frozen=True, slots=True)
class Whoami:
    """``whoami [--json]``."""

    json: bool = False


@dataclass(frozen=True, slots=True)
class Help:
    """``help``."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """Not a sentence of the language at all (exit 64)."""

    reason: MalformedReason


@dataclass(frozen=True, slots=True)
class Unknown:
    """Well-formed words, but not a verb we know: scp, sftp-server, bash... (exit 1)."""

    verb: str


Request = Default | Attach | Watch | Run | ListTargets | Whoami | Help | Malformed | Unknown


def _lex(raw: bytes) -> list[str] | Malformed:
    if len(raw) > MAX_REQUEST_BYTES:
        return Malformed("too_long")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return Malformed("not_utf8")
    if not (text.isascii() and text.isprintable()):
        return Malformed("not_printable_ascii")
    if not _ALLOWED_CHARS.issuperset(text):
        return Malformed("metacharacter")
    return [word for word in text.split(" ") if word]


def parse(raw: bytes | None) -> Request:
    """Parse ``SSH_ORIGINAL_COMMAND`` (``None`` when the guest sent none)."""
    if raw is None:
        return Default()
    words = _lex(raw)
    if isinstance(words, Malformed):
        return words
    if not words:
        return Default()
    verb, args = words[0], words[1:]
    request: Request
    match verb:
        case "attach" | "watch" | "run":
            if len(args) != 1:
                return Malformed("bad_arguments")
            if not _NAME.fullmatch(args[0]):
                return Malformed("bad_name")
            request = (
                Attach(args[0])
                if verb == "attach"
                else Watch(args[0])
                if verb == "watch"
                else Run(args[0])
            )
        case "list" | "whoami":
            if args not in ([], ["--json"]):
                return Malformed("bad_arguments")
            as_json = args == ["--json"]
            request = ListTargets(json=as_json) if verb == "list" else Whoami(json=as_json)
        case "help":
            if args:
                return Malformed("bad_arguments")
            request = Help()
        case _:
            request = Unknown(verb)
    return request
