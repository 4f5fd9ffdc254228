"""``gatekeeperctl replay ID|FILE``: play a recording in this terminal, safely.

The bytes written are the recorded output, except the escape sequences that
would let a recording do more to the reviewer's terminal than draw on it
(docs/hosting.md, "Replaying safely"):

* every OSC except window titles (``OSC 0/1/2``) - titles too unless
  ``--allow-title``: ``OSC 52`` writes the clipboard, ``OSC 8`` makes links
  whose text hides their target, ``OSC 4/10/11/12/104`` change colours beyond
  the replay, ``OSC 7``/``OSC 1337`` talk to the terminal program;
* DCS, APC, PM and SOS strings (``ESC P``, ``ESC _``, ``ESC ^``, ``ESC X``):
  tmux passthrough (``ESC Ptmux;``), DECRQSS/XTGETTCAP requests, sixel and
  kitty graphics;
* CSI sequences that make the terminal answer or act on its window: device
  status and attribute reports (``n``, ``c``), window operations (``t``:
  resize, iconify, *report the title* - the answer lands in the reviewer's
  input), mode reports (``$p``);
* C1 controls (U+0080-U+009F), which some terminals read as 8-bit ESC [/ESC ].

What remains draws text, moves the cursor, sets colours and modes: what any
terminal replay does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Final

#: CSI final bytes (with their intermediates) that make the terminal answer or act.
_CSI_DROP: Final = re.compile(r"^[\x30-\x3f]*([\x20-\x2f]*)([nct]|\$p|\$w|\$u)$")
_ST_STRINGS: Final = {"P": "dcs", "_": "apc", "^": "pm", "X": "sos"}
_TITLE: Final = re.compile(r"^[012];")
_C1_INTRODUCERS: Final = {
    "\x9b": "[",
    "\x9d": "]",
    "\x90": "P",
    "\x9f": "_",
    "\x9e": "^",
    "\x98": "X",
}


@dataclass
class Sanitiser:
    """A streaming filter for terminal output (sequences may span events)."""

    allow_title: bool = False
    state: str = "text"
    buffer: list[str] = field(default_factory=list)

    def feed(self, text: str) -> str:
        """Filter one chunk; incomplete sequences wait for the next chunk."""
        out: list[str] = []
        for char in text:
            self._step(char, out)
        return "".join(out)

    def _step(self, char: str, out: list[str]) -> None:
        state = self.state
        if state == "text":
            if char == "\x1b":
                self.state, self.buffer = "esc", []
            elif char in _C1_INTRODUCERS:
                # 8-bit CSI/OSC/DCS...: filtered like their 7-bit forms (and sent as those).
                self.state = "esc"
                self._step(_C1_INTRODUCERS[char], out)
            elif "\x80" <= char <= "\x9f":
                pass  # other C1 controls: dropped
            else:
                out.append(char)
        elif state == "esc":
            if char == "[":
                self.state, self.buffer = "csi", []
            elif char == "]":
                self.state, self.buffer = "osc", []
            elif char in _ST_STRINGS:
                self.state = "string"
            elif char == "\x1b":
                self.state = "esc"
            else:
                self.state = "text"
                out.append("\x1b" + char)
        elif state == "csi":
            self.buffer.append(char)
            if "\x40" <= char <= "\x7e":
                body = "".join(self.buffer)
                self.state = "text"
                if not _CSI_DROP.match(body):
                    out.append("\x1b[" + body)
            elif not ("\x20" <= char <= "\x3f") or len(self.buffer) > 256:
                self.state = "text"  # malformed: dropped
        elif state == "osc":
            if char == "\x07":
                self._end_osc(out)
            elif char == "\x1b":
                self.state = "osc-esc"
            elif char == "\x9c":
                self._end_osc(out)
            elif len(self.buffer) < 4096:
                self.buffer.append(char)
        elif state == "osc-esc":
            if char == "\\":
                self._end_osc(out)
            else:
                self.state = "osc"
        elif state == "string":
            if char == "\x1b":
                self.state = "string-esc"
            elif char == "\x9c":
                self.state = "text"  # 8-bit ST
        elif state == "string-esc":
            self.state = "text" if char == "\\" else "string"

    def _end_osc(self, out: list[str]) -> None:
        body = "".join(self.buffer)
        self.state = "text"
        if self.allow_title and _TITLE.match(body) and body.isprintable():
            out.append("\x1b]" + body + "\x07")


@dataclass
class Cast:
    """A recording: its header and ``(seconds, kind, data)`` events, parts joined."""

    header: dict[str, Any]
    events: list[tuple[float, str, str]]
    files: list[str]


def load(paths: list[str]) -> Cast:
    """Read the parts of one recording (continuation parts continue its clock)."""
    header: dict[str, Any] = {}
    events: list[tuple[float, str, str]] = []
    offset = 0.0
    for path in paths:
        with open(path, encoding="ascii", errors="replace") as handle:
            first = json.loads(handle.readline())
            if not isinstance(first, dict) or first.get("version") != 2:
                raise ValueError(f"{path}: not an asciicast v2 file")
            if not header:
                header = first
            else:
                offset = float(first.get("timestamp", 0)) - float(header.get("timestamp", 0))
            for line in handle:
                item = json.loads(line)
                if isinstance(item, list) and len(item) == 3:
                    events.append((offset + float(item[0]), str(item[1]), str(item[2])))
    events.sort(key=lambda e: e[0])
    return Cast(header, events, paths)


def resolve(target: str, directories: list[str]) -> list[str]:
    """A file path, or a recording id (``<start>_<session>_p<N>``): all of its parts."""
    if os.sep in target or target.endswith(".cast"):
        return [target]
    if not re.fullmatch(r"[0-9]{8}T[0-9.]{13}Z_[A-Za-z0-9_-]{1,64}_p[0-9]{1,9}", target):
        raise ValueError(f"not a recording id or file: {target}")
    for directory in directories:
        with_parts = sorted(
            os.path.join(directory, n)
            for n in _listdir(directory)
            if n.startswith(target + "_") and n.endswith(".cast")
        )
        if with_parts:
            return with_parts
    raise ValueError(f"no recording {target}")


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def play(
    cast: Cast,
    out: Any,
    *,
    speed: float = 1.0,
    idle_limit: float | None = None,
    at: float | None = None,
    allow_title: bool = False,
    sleep: Any = time.sleep,
) -> None:
    """Write the sanitised output with its timing; ``at`` = seconds into the recording."""
    sanitiser = Sanitiser(allow_title=allow_title)
    previous = 0.0
    for seconds, kind, data in cast.events:
        if kind != "o":
            continue
        if at is None or seconds >= at:
            gap = seconds - max(previous, at or 0.0)
            if idle_limit is not None:
                gap = min(gap, idle_limit)
            if gap > 0:
                out.flush()
                sleep(gap / speed)
        previous = seconds
        out.write(sanitiser.feed(data).encode("utf-8", errors="replace"))
    out.flush()


def _at_seconds(cast: Cast, text: str) -> float:
    """``--at``: seconds (``90``), ``MM:SS`` into the recording, or an ISO time of day."""
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    if re.fullmatch(r"[0-9]+:[0-9]{2}", text):
        minutes, seconds = text.split(":")
        return int(minutes) * 60 + int(seconds)
    from gatekeeper.review import auditread  # noqa: PLC0415 - only for a wall-clock --at

    moment = auditread.parse_time(text)
    return max(0.0, moment.timestamp() - float(cast.header.get("timestamp", 0)))


def _directories(args: argparse.Namespace) -> list[str]:
    from gatekeeper.cli.common import policy_path  # noqa: PLC0415
    from gatekeeper.host import control as hostlib  # noqa: PLC0415 - only to find recording ids

    if os.sep in args.recording or args.recording.endswith(".cast"):
        return []
    from gatekeeper.policy.loader import PolicyError, load  # noqa: PLC0415

    try:
        policy = load(policy_path(args))
    except PolicyError as error:
        raise hostlib.HostError(error.render()) from None
    return [s.recordings_dir for s in policy.sessions.values()]


def _run(args: argparse.Namespace) -> int:
    from gatekeeper.host.control import HostError  # noqa: PLC0415

    try:
        cast = load(resolve(args.recording, _directories(args)))
        at = _at_seconds(cast, args.at) if args.at else None
    except (OSError, ValueError, HostError) as error:
        print(f"gatekeeperctl replay: {error}", file=sys.stderr)
        return 66
    if args.speed <= 0:
        print("gatekeeperctl replay: --speed must be positive", file=sys.stderr)
        return 64
    play(
        cast,
        sys.stdout.buffer,
        speed=args.speed,
        idle_limit=args.idle_limit,
        at=at,
        allow_title=args.allow_title,
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``replay``."""
    from gatekeeper.cli.common import add_policy_option  # noqa: PLC0415

    parser = subparsers.add_parser(
        "replay",
        help="(host, admin) play a session recording in this terminal",
        description="Play a recording (a .cast file, or a recording id from "
        "'gatekeeperctl recordings', all of its parts) with its timing. Sequences that "
        "would reach beyond the screen (clipboard, links, terminal reports, "
        "passthrough) are removed; window titles too, unless --allow-title.",
    )
    parser.add_argument("recording", metavar="ID|FILE")
    parser.add_argument("--speed", type=float, default=1.0, help="playback speed (default 1)")
    parser.add_argument(
        "--idle-limit", type=float, default=None, metavar="S", help="cap pauses at S seconds"
    )
    parser.add_argument(
        "--at", metavar="TIME", help="start at TIME: seconds, MM:SS, or a date and time (UTC)"
    )
    parser.add_argument("--allow-title", action="store_true", help="keep window-title changes")
    add_policy_option(parser)
    parser.set_defaults(handler=_run)
