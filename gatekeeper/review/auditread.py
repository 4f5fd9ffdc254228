"""Reading the audit trail back: journald or the file sink, trust, guest sessions.

The reader behind ``gatekeeperctl audit`` (SPEC §6). It never trusts what a
record says about itself (SECURITY.md §24): any local user can send a
journald entry tagged ``SYSLOG_IDENTIFIER=gatekeeper`` with any ``MESSAGE``.
What a sender cannot choose are the fields journald adds from the kernel's
``SCM_CREDENTIALS`` - ``_UID`` and ``_PID`` - so a record is *trusted* only
when they agree with it:

* ``connect``: ``_UID`` is the record's ``uid`` (the connecting account) and
  ``_PID`` its ``pid``; when journald could still read the sender's
  ``/proc`` entry, ``_EXE``/``_CMDLINE`` show the gatekeeper's interpreter
  running an accepted launcher (``python -I /usr/bin/gatekeeper``) - or,
  because journald reads ``/proc`` after the datagram arrived, the program
  the record says was exec'd in the same pid (``tmux``, the granted program);
* host-side events (``join``, ``leave``, ``kick``, ``revoke``, ``share``):
  ``_UID`` is the session owner's (from the policy) or root, and ``_EXE``,
  when known, the gatekeeper's interpreter (``gatekeeperctl`` hooks).

A record that contradicts those facts is *forged*; one that cannot be checked
(file sink: no kernel metadata; a host event for a session the policy does not
name) is *unverified*. Nothing here prints: text is escaped by the caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from gatekeeper.login.audit import message_id

Trust = Literal["trusted", "forged", "unverified"]

HOST_EVENTS: Final = frozenset({"share", "join", "leave", "kick", "revoke", "record"})
DEFAULT_LAUNCHER: Final = "/usr/bin/gatekeeper"
DEFAULT_SOCKET: Final = "/run/systemd/journal/socket"
#: journald's own fields that the reader keeps (everything a sender cannot forge).
META_FIELDS: Final = (
    "_UID",
    "_PID",
    "_EXE",
    "_CMDLINE",
    "_COMM",
    "MESSAGE_ID",
    "__REALTIME_TIMESTAMP",
    "__CURSOR",
)
_NAMESPACE_SOCKET = re.compile(r"^/run/systemd/journal\.([A-Za-z0-9_.-]+)/socket$")


class ReadError(Exception):
    """The audit trail could not be read (journalctl failed, the file is missing)."""


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class Entry:
    """One audit record as read back, with the verdict on who really wrote it."""

    record: Mapping[str, Any]
    time: datetime
    source: Literal["journal", "file"]
    trust: Trust
    why: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def event(self) -> str:
        """The record's event type (``connect``, ``join``, ...)."""
        return str(self.record.get("event", ""))

    def as_json(self) -> dict[str, Any]:
        """The record plus the reader's verdict (``trust``, ``trust_reason``, journald's)."""
        out = dict(self.record)
        out["trust"] = self.trust
        out["trust_reason"] = self.why
        out["source"] = self.source
        out["journal"] = {k: v for k, v in self.meta.items() if k != "__CURSOR"}
        out["received"] = self.time.isoformat()
        return out


@dataclass(frozen=True)
class TrustConfig:
    """What counts as the gatekeeper: launcher paths, interpreters, session owners."""

    launchers: frozenset[str]
    interpreters: frozenset[str]
    owners: Mapping[str, int]
    #: What the policy lets the gatekeeper exec (tmux, programs); empty: unknown.
    targets: frozenset[str] = frozenset()


def interpreter_of(launcher: str) -> str | None:
    """The interpreter named by a launcher's ``#!`` line, or None if unreadable."""
    try:
        with open(launcher, "rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", errors="replace").split()
    return words[0] if words else None


def trust_config(
    launchers: Sequence[str], owners: Mapping[str, int], targets: Iterable[str] = ()
) -> TrustConfig:
    """Accept ``launchers`` (paths and their real paths) and their interpreters.

    The interpreter running ``gatekeeperctl`` itself is accepted too: the
    host-side hooks are ``gatekeeperctl`` run by the same Python.
    """
    accepted = set(launchers) | {os.path.realpath(p) for p in launchers}
    interpreters = {os.path.realpath(sys.executable)}
    for launcher in launchers:
        interpreter = interpreter_of(launcher)
        if interpreter is not None:
            interpreters.add(os.path.realpath(interpreter))
    return TrustConfig(
        frozenset(accepted), frozenset(interpreters), dict(owners), frozenset(targets)
    )


def _is_launcher_cmdline(cmdline: str, config: TrustConfig) -> bool:
    # The kernel runs a "#!<python> -I" script as "<python> -I <launcher> [args]".
    words = cmdline.split(" ")
    return len(words) >= 3 and words[1] == "-I" and words[2] in config.launchers


def _exec_target(record: Mapping[str, Any], config: TrustConfig) -> str | None:
    """The program the record says the gatekeeper exec'd, if it may count as such.

    It must be one the policy lets the gatekeeper exec (when the policy is
    known) and never the interpreter itself: otherwise any script could claim
    to be "the gatekeeper after exec" of itself.
    """
    argv = record.get("argv")
    if record.get("decision") != "allow" or not isinstance(argv, list) or not argv:
        return None
    target = str(argv[0])
    if os.path.realpath(target) in config.interpreters:
        return None
    if config.targets and target not in config.targets:
        return None
    return target


def _check_connect(
    record: Mapping[str, Any], meta: Mapping[str, str], config: TrustConfig
) -> tuple[Trust, str]:
    uid, pid = meta.get("_UID"), meta.get("_PID")
    if uid is None or str(record.get("uid")) != uid:
        return "forged", f"sent by uid {uid}, record claims uid {record.get('uid')}"
    if pid is None or str(record.get("pid")) != pid:
        return "forged", f"sent by pid {pid}, record claims pid {record.get('pid')}"
    exe, cmdline = meta.get("_EXE"), meta.get("_CMDLINE")
    if exe is None and cmdline is None:
        # The process had exited before journald looked: uid and pid still hold.
        return "trusted", "sender exited before journald read its /proc entry"
    # journald reads /proc/PID/exe, then /proc/PID/cmdline, after the datagram
    # arrived; the gatekeeper may exec its target in between. Each may show the
    # launcher or the target, but never the target's exe with the launcher's
    # command line (that order is impossible).
    exe_gatekeeper = exe is None or exe in config.interpreters
    cmd_gatekeeper = cmdline is None or _is_launcher_cmdline(cmdline, config)
    if exe_gatekeeper and cmd_gatekeeper:
        return "trusted", ""
    target = _exec_target(record, config)
    if target is not None:
        exe_target = exe is None or exe == os.path.realpath(target)
        cmd_target = cmdline is None or cmdline.split(" ")[0] == target
        if (exe_gatekeeper or exe_target) and cmd_target:
            return "trusted", "journald read the sender after it exec'd the granted target"
    return "forged", f"written by {exe or '?'} ({cmdline or '?'}), not the gatekeeper launcher"


def _check_host(
    record: Mapping[str, Any], meta: Mapping[str, str], config: TrustConfig
) -> tuple[Trust, str]:
    uid = meta.get("_UID")
    exe = meta.get("_EXE")
    if exe is not None and exe not in config.interpreters:
        return "forged", f"written by {exe}, not gatekeeperctl's interpreter"
    if uid == "0":
        return "trusted", ""
    session = str(record.get("session"))
    owner = config.owners.get(session)
    if owner is None:
        return "unverified", f"owner of session {session} unknown (no policy names it)"
    if uid != str(owner):
        return "forged", f"sent by uid {uid}, session {session} is owned by uid {owner}"
    return "trusted", ""


def check(
    record: Mapping[str, Any], meta: Mapping[str, str], config: TrustConfig
) -> tuple[Trust, str]:
    """Decide whether journald's own fields confirm the record (see the module doc)."""
    expected = message_id(record)
    sent = meta.get("MESSAGE_ID")
    if sent is not None and sent != expected:
        return "forged", f"MESSAGE_ID {sent} does not match event {record.get('event')}"
    event = str(record.get("event", ""))
    if event == "connect":
        return _check_connect(record, meta, config)
    if event in HOST_EVENTS:
        return _check_host(record, meta, config)
    return "forged", f"unknown event {event}"


def _text(value: Any) -> str | None:
    """A journalctl JSON value as text (byte arrays decoded; repeated fields refused)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(value).decode("utf-8", errors="surrogateescape")
    return None


def from_journal(line: bytes | str, config: TrustConfig) -> Entry | None:
    """Parse one ``journalctl -o json`` line; None for lines that are not entries."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    meta: dict[str, str] = {}
    for name in META_FIELDS:
        text = _text(raw.get(name)) if name in raw else None
        if text is not None:
            meta[name] = text
    try:
        time = datetime.fromtimestamp(int(meta.get("__REALTIME_TIMESTAMP", "0")) / 1e6, UTC)
    except ValueError:
        time = datetime.fromtimestamp(0, UTC)
    message = _text(raw.get("MESSAGE"))
    record: Any = None
    if message is not None:
        with contextlib.suppress(ValueError):
            record = json.loads(message)
    if not isinstance(record, dict):
        shown = {
            "event": "?",
            "detail": message if message is not None else repr(raw.get("MESSAGE")),
        }
        return Entry(shown, time, "journal", "forged", "MESSAGE is not one JSON record", meta)
    trust, why = check(record, meta, config)
    return Entry(record, time, "journal", trust, why, meta)


def from_file_line(line: bytes) -> Entry | None:
    """Parse one line of the file sink (no kernel metadata: always unverified)."""
    text = line.decode("utf-8", errors="surrogateescape").strip()
    if not text:
        return None
    record: Any = None
    with contextlib.suppress(ValueError):
        record = json.loads(text)
    if not isinstance(record, dict):
        return Entry(
            {"event": "?", "detail": text},
            datetime.fromtimestamp(0, UTC),
            "file",
            "forged",
            "line is not one JSON record",
        )
    time = parse_record_time(record.get("timestamp")) or datetime.fromtimestamp(0, UTC)
    return Entry(record, time, "file", "unverified", "file sink: no kernel-attested sender")


def parse_record_time(value: Any) -> datetime | None:
    """The record's own ``timestamp`` (ISO 8601, UTC) as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


#: Fields the gatekeeper stores already escaped (textsafe.escape) at write time.
PRE_ESCAPED: Final = frozenset({"original_command", "tty"})
_MAX_CODE_POINT: Final = 0x10FFFF
_ESCAPE_SEQUENCE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def unescape(text: str) -> str:
    """Undo :func:`gatekeeper.login.textsafe.escape` (for display, where it is re-applied).

    ``escape(unescape(s)) == s`` for anything ``escape`` produced, so a stored
    ``\\x1b`` shows as ``\\x1b`` rather than ``\\\\x1b``; a forged raw ESC
    comes out of ``escape`` as ``\\x1b`` too (and its record is flagged).
    """

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        if body == "\\":
            return "\\"
        code = int(body[1:], 16)
        return chr(code) if code <= _MAX_CODE_POINT else match.group(0)

    return _ESCAPE_SEQUENCE.sub(one, text)


# --------------------------------------------------------------------------- time


_RELATIVE = re.compile(r"^([+-]?)(\d+)\s*(s|sec|m|min|h|hour|hours|d|day|days)(\s+ago)?$")
_UNITS: Final = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """Parse a ``--since``/``--until`` time.

    Accepted: ISO 8601 (naive = local time), ``today``, ``yesterday``,
    ``tomorrow``, ``now``, ``-2h``/``+30m``/``3d ago``, ``@EPOCH``.

    Raises ``ValueError`` with a readable message.
    """
    now = now or datetime.now().astimezone()
    word = text.strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    named = {
        "now": now,
        "today": midnight,
        "yesterday": midnight - timedelta(days=1),
        "tomorrow": midnight + timedelta(days=1),
    }
    if word in named:
        return named[word]
    if word.startswith("@") and word[1:].replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(word[1:]), UTC)
    if match := _RELATIVE.fullmatch(word):
        sign, amount, unit, ago = match.groups()
        delta = timedelta(seconds=int(amount) * _UNITS[unit])
        return now - delta if sign == "-" or ago else now + delta
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use ISO 8601 (2026-11-26 14:00), today, yesterday, "
            "now, 2h ago (or --since=-2h), +30m or @EPOCH"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


# --------------------------------------------------------------------------- sources


def namespace_of(socket_path: str) -> str | None:
    """The journald namespace behind a socket path (None: the system journal)."""
    if socket_path == DEFAULT_SOCKET:
        return None
    if match := _NAMESPACE_SOCKET.fullmatch(socket_path):
        return match.group(1)
    raise ReadError(f"cannot tell the journald namespace of {socket_path}: pass --namespace")


def journalctl_argv(
    namespace: str | None,
    identifier: str,
    since: datetime | None,
    until: datetime | None,
    *,
    follow: bool = False,
    lines: int | None = None,
) -> list[str]:
    """The ``journalctl`` command line that reads (or follows) the gatekeeper's entries."""
    argv = ["journalctl", "--output=json", "--no-pager", "--quiet"]
    if namespace is not None:
        argv.append(f"--namespace={namespace}")
    if since is not None:
        argv.append(f"--since=@{since.timestamp():.6f}")
    if until is not None:
        argv.append(f"--until=@{until.timestamp():.6f}")
    if follow:
        argv.append("--follow")
        if since is None:
            argv.append(f"--lines={lines if lines is not None else 10}")
    argv.append(f"SYSLOG_IDENTIFIER={identifier}")
    return argv


def read_journal(argv: Sequence[str], config: TrustConfig) -> list[Entry]:
    """Run journalctl once and parse every entry."""
    try:
        result = subprocess.run(list(argv), capture_output=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ReadError(f"journalctl: {error}") from error
    if result.returncode != 0 and not result.stdout:
        message = result.stderr.decode("utf-8", errors="replace").strip()
        raise ReadError(f"journalctl failed ({result.returncode}): {message}")
    return [e for line in result.stdout.splitlines() if (e := from_journal(line, config))]


def follow_journal(argv: Sequence[str], config: TrustConfig) -> Iterator[Entry]:
    """Yield entries as journalctl ``--follow`` prints them; stop journalctl on exit."""
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None  # noqa: S101 - Popen(stdout=PIPE) guarantees it
    try:
        for line in process.stdout:
            entry = from_journal(line, config)
            if entry is not None:
                yield entry
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        if process.poll() is None:
            process.kill()
            process.wait()


def read_file(path: str) -> list[Entry]:
    """Every record of the file sink."""
    try:
        with open(path, "rb") as handle:
            return [e for line in handle if (e := from_file_line(line))]
    except OSError as error:
        raise ReadError(f"{path}: {error.strerror}") from error


def follow_file(path: str, offset: int, wait: Callable[[], None]) -> Iterator[Entry]:
    """Yield records appended to ``path`` after ``offset``; reopen it after logrotate.

    ``wait`` is called between polls (the caller's pacing). A rotated file is
    noticed by its inode changing; the new file is read from its start.
    """
    handle = None
    inode = None
    pending = b""
    try:
        while True:
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - kept open across polls
                except FileNotFoundError:
                    wait()
                    continue
                handle.seek(offset)
                offset = 0
                inode = os.fstat(handle.fileno()).st_ino
            chunk = handle.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    entry = from_file_line(line)
                    if entry is not None:
                        yield entry
                continue
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino != inode:
                    handle.close()
                    handle, pending = None, b""
                    continue
            wait()
    finally:
        if handle is not None:
            handle.close()


def append_only(path: str) -> bool | None:
    """Whether the file has the append-only inode flag (``chattr +a``); None if unknown."""
    import fcntl  # noqa: PLC0415 - only for this check
    import struct  # noqa: PLC0415

    fs_ioc_getflags = 0x80086601
    fs_append_fl = 0x20
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, fs_ioc_getflags, b"\0" * 8))[0]
    except OSError:
        return None
    finally:
        os.close(fd)
    return bool(flags & fs_append_fl)


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """The ``audit`` filters; None matches anything."""

    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    person: str | None = None
    session: str | None = None
    decision: str | None = None
    connection: str | None = None
    trusted_only: bool = False

    def in_window(self, when: datetime) -> bool:
        """Whether ``when`` lies in ``[since, until)``."""
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )

    def match(self, entry: Entry) -> bool:
        """Whether one record passes every filter."""
        record = entry.record
        checks = (
            (self.user, record.get("user")),
            (self.person, record.get("person")),
            (self.session, record.get("session")),
            (self.decision, record.get("decision")),
            (self.connection, record.get("connection_id")),
        )
        if any(want is not None and str(got) != want for want, got in checks):
            return False
        if self.trusted_only and entry.trust != "trusted":
            return False
        return self.in_window(entry.time)


# --------------------------------------------------------------------------- sessions


@dataclass
class GuestSession:
    """One guest's visit: the connect record and, when hooks ran, its join and leave."""

    connect: Entry | None
    join: Entry | None = None
    leave: Entry | None = None

    def _pick(self, name: str) -> Any:
        for part in (self.connect, self.join, self.leave):
            if part is not None and part.record.get(name) is not None:
                return part.record.get(name)
        return None

    @property
    def parts(self) -> list[Entry]:
        """The records this session was built from."""
        return [p for p in (self.connect, self.join, self.leave) if p is not None]

    @property
    def start(self) -> datetime:
        """When the guest attached (the join), else when it connected."""
        first = self.join or self.connect or self.leave
        assert first is not None  # noqa: S101 - a session has at least one record
        return first.time

    @property
    def duration(self) -> float | None:
        """Seconds attached: the leave record's ``duration_seconds``, else leave - start."""
        if self.leave is None:
            return None
        given = self.leave.record.get("duration_seconds")
        if isinstance(given, int | float) and not isinstance(given, bool):
            return float(given)
        return max(0.0, (self.leave.time - self.start).total_seconds())

    @property
    def ended(self) -> str:
        """How it ended: the leave record's ``ended``; ``attached`` while still on."""
        if self.leave is not None:
            return str(self.leave.record.get("ended") or "left")
        if self.join is not None:
            return "attached"
        return "no-join-record"

    @property
    def recordings(self) -> list[str]:
        """The recording files of the visit: the leave record's, else the join record's."""
        for part in (self.leave, self.join):
            names = part.record.get("recordings") if part is not None else None
            if isinstance(names, list) and names:
                return [str(n) for n in names]
        return []

    @property
    def trust(self) -> Trust:
        """The worst verdict among its records."""
        verdicts = {p.trust for p in self.parts}
        if "forged" in verdicts:
            return "forged"
        if "unverified" in verdicts:
            return "unverified"
        return "trusted"

    @property
    def why(self) -> str:
        """The reasons of the records that are not trusted."""
        return "; ".join(f"{p.event}: {p.why}" for p in self.parts if p.trust != "trusted")

    def as_json(self) -> dict[str, Any]:
        """The session as one JSON object (for ``--sessions --json``)."""
        return {
            "user": self._pick("user"),
            "person": self._pick("person"),
            "client_addr": self._pick("client_addr"),
            "client_port": self._pick("client_port"),
            "session": self._pick("session"),
            "mode": self._pick("mode"),
            "connection_id": self._pick("connection_id"),
            "pid": self.connect.record.get("pid") if self.connect else self._pick("client_pid"),
            "start": self.start.isoformat(),
            "duration_seconds": self.duration,
            "ended": self.ended,
            "trust": self.trust,
            "trust_reason": self.why,
            "recordings": self.recordings,
        }

    def field(self, name: str) -> Any:
        """A field from the first record that has it (connect, then join, then leave)."""
        return self._pick(name)


def join_sessions(entries: Iterable[Entry]) -> list[GuestSession]:
    """Join connect, join and leave records into one :class:`GuestSession` per visit.

    The key is the pid: the gatekeeper execs tmux, so the host-side records'
    ``client_pid`` is the connect record's ``pid``. Pids are reused, so a join
    takes the latest earlier connect with that pid that has no join yet, and a
    leave the latest earlier join without a leave. Records that are not
    trusted only join each other: they show, flagged, on lines of their own
    and never end, shorten or hijack a trusted visit.
    """
    ordered = sorted(entries, key=lambda e: e.time)
    sessions: list[GuestSession] = []
    open_connect: dict[str, list[GuestSession]] = {}
    open_join: dict[str, list[GuestSession]] = {}
    for entry in ordered:
        record = entry.record
        if entry.event == "connect":
            if record.get("decision") != "allow" or not record.get("session"):
                continue
            visit = GuestSession(entry)
            sessions.append(visit)
            open_connect.setdefault(str(record.get("pid")), []).append(visit)
        elif entry.event == "join":
            key = str(record.get("client_pid"))
            candidates = open_connect.get(key, [])
            found = _latest(candidates, record.get("session"), entry)
            if found is None:
                found = GuestSession(None)
                sessions.append(found)
            else:
                candidates.remove(found)
            found.join = entry
            open_join.setdefault(key, []).append(found)
        elif entry.event == "leave":
            key = str(record.get("client_pid"))
            candidates = open_join.get(key, [])
            found = _latest(candidates, record.get("session"), entry)
            if found is None:
                found = GuestSession(None)
                sessions.append(found)
            else:
                candidates.remove(found)
            found.leave = entry
    return sessions


def _latest(candidates: list[GuestSession], session: Any, entry: Entry) -> GuestSession | None:
    """The most recent candidate for ``session`` of the same trust.

    A record that is not trusted never joins a trusted visit: a forged
    ``leave`` must not end (or shorten) a real session; it shows on a line
    of its own, flagged.
    """
    trusted = entry.trust == "trusted"
    fitting = [
        c for c in candidates if c.field("session") == session and (c.trust == "trusted") == trusted
    ]
    return fitting[-1] if fitting else None


def session_matches(visit: GuestSession, filters: Filters) -> bool:
    """Whether a joined session passes the filters (time: its start)."""
    checks = (
        (filters.user, visit.field("user")),
        (filters.person, visit.field("person")),
        (filters.session, visit.field("session")),
        (filters.connection, visit.field("connection_id")),
        (filters.decision, visit.connect.record.get("decision") if visit.connect else None),
    )
    if any(want is not None and str(got) != want for want, got in checks):
        return False
    if filters.trusted_only and visit.trust != "trusted":
        return False
    return filters.in_window(visit.start)
