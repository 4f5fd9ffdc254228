"""The pane recorder: ``pipe-pane -O`` output in, asciicast v2 files out.

tmux (running as the host) starts one recorder per pane and recording period
(``share``, a join or a leave starts a new period), through ``/bin/sh -c``
(pipe-pane always uses a shell). Its command line is built by
:func:`gatekeeper.host.recording.recorder_command` from policy values that are
validated against :data:`gatekeeper.host.control.SAFE_PATH` and from tmux's own
numeric formats (``#{pane_id}``, ``#{pane_width}``): no guest text, no ``#``.

Files: ``<DIR>/<UTC start>_<session>_p<pane>_<part>.cast``, mode 0600,
created with ``O_EXCL|O_NOFOLLOW``; a file that reaches ``--limit`` bytes is
closed and the recording goes on in part ``_001``, ``_002``... (at most
:data:`MAX_PARTS`): never unbounded. The names sort by time.

Light on purpose (stdlib only, started with ``python -I -m``): a pane's output
waits for it. On any write failure the recorder reports it
(:func:`gatekeeper.host.recording.recorder_failed`: audit record, and under
``record = "required"`` the guests are detached and locked out) and exits.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import select
import subprocess
import sys
import time
from typing import Final

MAX_PARTS: Final = 999
_PANE: Final = re.compile(r"^%([0-9]{1,9})$")
_STAMP: Final = re.compile(r"^[0-9]{8}T[0-9]{6}\.[0-9]{6}Z$")
_SIZE: Final = re.compile(r"^([0-9]{1,5})x([0-9]{1,5})$")
_RESIZE_EVERY: Final = 1.0
_CHUNK: Final = 65536
_COALESCE: Final = 1024 * 1024


def stamp(at: float | None = None) -> str:
    """A UTC file-name timestamp that sorts: ``20261202T130501.123456Z``."""
    moment = time.time() if at is None else at
    seconds = time.strftime("%Y%m%dT%H%M%S", time.gmtime(moment))
    return f"{seconds}.{int((moment % 1) * 1_000_000):06d}Z"


def file_name(start: str, session: str, pane: str, part: int) -> str:
    """``<start>_<session>_p<N>_<part>.cast`` for pane ``%N``."""
    return f"{start}_{session}_p{pane.lstrip('%')}_{part:03d}.cast"


class Recorder:
    """One pane's recording: the current file, its size and the clock."""

    def __init__(self, args: argparse.Namespace, width: int, height: int) -> None:
        self.args = args
        self.width, self.height = width, height
        self.part = 0
        self.fd = -1
        self.size = 0
        self.started = time.monotonic()
        self.last_size_check = self.started

    def open_part(self) -> str:
        """Create the next part with its header; return its name."""
        name = file_name(self.args.start, self.args.session, self.args.pane, self.part)
        path = os.path.join(self.args.dir, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self.fd = os.open(path, flags, 0o600)
        header = {
            "version": 2,
            "width": self.width,
            "height": self.height,
            "timestamp": int(time.time()),
            "title": f"{self.args.session} pane {self.args.pane} part {self.part}",
            "env": {"TERM": "xterm-256color"},
        }
        self.size = 0
        self.write_line(json.dumps(header, ensure_ascii=True))
        return name

    def write_line(self, line: str) -> None:
        """Write one line of the file, all of it."""
        data = (line + "\n").encode("ascii")
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(data)

    def event(self, kind: str, text: str) -> None:
        """Append one event; start the next part when this one is full."""
        elapsed = round(time.monotonic() - self.started, 6)
        self.write_line(json.dumps([elapsed, kind, text], ensure_ascii=True))
        if self.size >= self.args.limit:
            os.close(self.fd)
            self.part += 1
            if self.part > MAX_PARTS:
                raise OSError(f"more than {MAX_PARTS} files of {self.args.limit} bytes")
            self.open_part()

    def check_size(self) -> None:
        """Record an ``"r"`` event when tmux says the pane changed size (at most once a second)."""
        now = time.monotonic()
        if now - self.last_size_check < _RESIZE_EVERY:
            return
        self.last_size_check = now
        try:
            out = subprocess.run(
                [
                    self.args.tmux,
                    "-S",
                    self.args.socket,
                    "display-message",
                    "-p",
                    "-t",
                    self.args.pane,
                    "#{pane_width}x#{pane_height}",
                ],
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
                env={"PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return
        match = _SIZE.match(out)
        if match:
            width, height = int(match.group(1)), int(match.group(2))
            if (width, height) != (self.width, self.height):
                self.width, self.height = width, height
                self.event("r", f"{width}x{height}")


def _read_available(most: int) -> bytes:
    """Block for output, then take what else is already there (up to 1 MiB): one event.

    tmux writes to the pipe in small pieces; coalescing them keeps the recorder's
    cost per byte low under a flood (``cat`` of a large file) and changes nothing
    for interactive output (whatever arrives within the same instant). ``most``
    is an eighth of the file limit, so one event overshoots a file by little.
    """
    data = os.read(0, _CHUNK)
    if not data:
        return data
    chunks = [data]
    size = len(data)
    while size < most and select.select([0], [], [], 0)[0]:
        more = os.read(0, _CHUNK)
        if not more:
            break
        chunks.append(more)
        size += len(more)
    return b"".join(chunks)


def record(args: argparse.Namespace) -> int:
    """Copy stdin (the pane's output) into asciicast files until tmux closes the pipe."""
    size = _SIZE.match(args.size)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (80, 24)
    recorder = Recorder(args, width, height)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        recorder.open_part()
        if args.mark:
            recorder.event("m", args.mark)
        while True:
            data = _read_available(min(_COALESCE, args.limit // 8))
            if not data:
                break
            text = decoder.decode(data)
            if text:
                recorder.event("o", text)
            recorder.check_size()
        tail = decoder.decode(b"", final=True)
        if tail:
            recorder.event("o", tail)
    except OSError as error:
        return _failed(args, f"recorder of pane {args.pane}: {error.strerror or error}")
    finally:
        if recorder.fd >= 0:
            os.close(recorder.fd)
    return 0


def _failed(args: argparse.Namespace, reason: str) -> int:
    from gatekeeper.host import recording  # noqa: PLC0415 - heavy, and only on failure

    recording.recorder_failed(args.policy, args.session, reason)
    return 1


def parse(argv: list[str]) -> argparse.Namespace:
    """The recorder's argv (see :func:`gatekeeper.host.recording.recorder_command`)."""
    parser = argparse.ArgumentParser(prog="gatekeeper-recorder")
    parser.add_argument("--policy", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--tmux", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--start", default="")
    parser.add_argument("--mark", default="")
    parser.add_argument("pane")
    args = parser.parse_args(argv)
    if not _PANE.match(args.pane):
        parser.error("bad pane id")
    if not args.start:
        args.start = stamp()
    elif not _STAMP.match(args.start):
        parser.error("bad --start")
    return args


def main() -> int:
    """Entry point of ``python -I -m gatekeeper.host.recorder``."""
    return record(parse(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
