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
import heapq
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from gatekeeper.login.audit import JOURNAL_FIELDS, message_id
from gatekeeper.login.textsafe import escape

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
    "_HOSTNAME",
    "__REALTIME_TIMESTAMP",
    "__CURSOR",
)
#: The native fields the gatekeeper writes beside MESSAGE (``GATEKEEPER_USER``, ...).
NATIVE_FIELDS: Final = tuple("GATEKEEPER_" + name.upper() for name in JOURNAL_FIELDS)
_NATIVE_PAIRS: Final = tuple(zip(JOURNAL_FIELDS, NATIVE_FIELDS, strict=True))
#: What ``journalctl --output-fields`` prints: the reader needs nothing else.
OUTPUT_FIELDS: Final = ("MESSAGE", *(f for f in META_FIELDS if not f.startswith("__")))
#: A file systemd-journal-remote writes with ``SplitMode=host``: ``remote-HOST.journal``
#: (archived: ``remote-HOST@SEQNUM-...journal``, ``...journal~`` after a crash).
_REMOTE_FILE = re.compile(r"^remote-(.+?)(@[^@/]*)?\.journal~?$")
JOURNAL_MAGIC: Final = b"LPKSHHRH"
#: The HOST of records from a journal file that names no source host.
UNNAMED_SOURCE: Final = "-"
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
    #: The host the record is attributed to (a collector's per-source file), if any.
    host: str | None = None
    #: True when the trust verdict rests on another host's word (read from a collector).
    claimed: bool = False

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
        if self.host is not None or self.claimed:
            out["host"] = self.host
            out["trust_scope"] = "host-claim" if self.claimed else "local"
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


@dataclass(frozen=True)
class Origin:
    """The host a collector's journal file came from (SECURITY.md §31).

    ``host`` is what systemd-journal-remote named the file after: the peer's
    address (Debian builds it without ``--trust``, so even over HTTPS it is
    the address) or a certificate's name. ``names`` are the names the
    auditor knows for it (``--hosts`` or /etc/hosts, reverse DNS), lower case;
    a record's ``_HOSTNAME`` must be one of them.
    """

    host: str
    names: frozenset[str]

    def check(self, claimed: str | None) -> tuple[Trust, str] | None:
        """None when ``_HOSTNAME`` agrees with the file; else the verdict and why."""
        if self.host == UNNAMED_SOURCE:
            return "unverified", (
                f"claims host {claimed or '?'}; its journal file names no source host "
                "(not a SplitMode=host file of systemd-journal-remote)"
            )
        if claimed is None:
            return "forged", f"no _HOSTNAME, file is from {self.host}"
        name = claimed.lower()
        if name in self.names or name.split(".")[0] in {n.split(".")[0] for n in self.names}:
            return None
        if not self.known:
            return "unverified", (
                f"claims host {claimed}; no name is known for {self.host} (pass --hosts FILE)"
            )
        shown = ", ".join(sorted(self.names - {self.host.lower()}))
        return "forged", f"claims host {claimed}, but its file is from {self.host} ({shown})"

    @property
    def known(self) -> bool:
        """Whether any name besides the address itself is known."""
        return bool(self.names - {self.host.lower()})


def _native_mismatch(raw: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
    """The first ``GATEKEEPER_*`` field that disagrees with the record, if any.

    journalctl matches on these fields, so a record whose native fields say
    one thing and whose MESSAGE another is flagged rather than mis-filtered.
    """
    for name, native in _NATIVE_PAIRS:
        sent = raw.get(native)
        if sent is None:
            continue
        value = record.get(name)
        if value is None:
            return f"{native} disagrees with the record"
        text = value if type(value) is str else str(value)
        if (sent if type(sent) is str else _text(sent)) != escape(text):
            return f"{native} disagrees with the record"
    return None


def from_journal(
    line: bytes | str, config: TrustConfig, origin: Origin | None = None
) -> Entry | None:
    """Parse one ``journalctl -o json`` line; None for lines that are not entries.

    With ``origin`` (a collector's file) the record is attributed to that
    host; a ``_HOSTNAME`` that disagrees is flagged, and whatever the
    per-record checks find is only that host's claim (``claimed``).
    """
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    meta: dict[str, str] = {}
    for name in META_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        text = value if type(value) is str else _text(value)
        if text is not None:
            meta[name] = text
    try:
        time = datetime.fromtimestamp(int(meta.get("__REALTIME_TIMESTAMP", "0")) / 1e6, UTC)
    except ValueError:
        time = datetime.fromtimestamp(0, UTC)
    host = origin.host if origin is not None else None
    claimed = origin is not None
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
        why = "MESSAGE is not one JSON record"
        return Entry(shown, time, "journal", "forged", why, meta, host, claimed)
    trust, why = check(record, meta, config)
    if trust != "forged" and (mismatch := _native_mismatch(raw, record)) is not None:
        trust, why = "forged", mismatch
    if origin is not None and trust != "forged":
        verdict = origin.check(meta.get("_HOSTNAME"))
        if verdict is not None:
            trust, why = verdict
    return Entry(record, time, "journal", trust, why, meta, host, claimed)


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


@dataclass(frozen=True)
class Source:
    """What one journalctl reads: the system journal, a namespace, or journal files."""

    namespace: str | None = None
    files: tuple[str, ...] = ()
    directory: str | None = None
    origin: Origin | None = None

    def options(self) -> list[str]:
        """Journalctl's source options."""
        if self.files:
            return [f"--file={path}" for path in self.files]
        if self.directory is not None:
            return [f"--directory={self.directory}"]
        if self.namespace is not None:
            return [f"--namespace={self.namespace}"]
        return []


def is_journal_file(path: str) -> bool:
    """Whether ``path`` is a journald file (its magic), not the JSON-lines file sink."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(JOURNAL_MAGIC)) == JOURNAL_MAGIC
    except OSError:
        return False


def read_hosts(path: str) -> dict[str, set[str]]:
    """An /etc/hosts-style file: address -> lower-case names (missing file: empty)."""
    names: dict[str, set[str]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2:
                    key = _address_key(words[0])
                    names.setdefault(key, set()).update(w.lower() for w in words[1:])
    except OSError:
        return {}
    return names


def _address_key(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower()


def origin_for(host: str, hosts: Mapping[str, set[str]], *, resolve: bool = True) -> Origin:
    """The :class:`Origin` of files from ``host`` with every name known for it."""
    key = _address_key(host)
    names = {host.lower(), *hosts.get(key, set())}
    if resolve:
        with contextlib.suppress(OSError, UnicodeError):
            name, aliases, _ = socket.gethostbyaddr(key)
            names.update(n.lower() for n in (name, *aliases))
    return Origin(host, frozenset(names))


def collector_sources(
    paths: Sequence[str], hosts: Mapping[str, set[str]], *, resolve: bool = True
) -> list[Source]:
    """One :class:`Source` per sending host, from systemd-journal-remote's files.

    ``SplitMode=host`` writes ``remote-HOST.journal`` (plus archived
    ``remote-HOST@...journal``) per source; each host is read by its own
    journalctl so every record keeps the file it came from. Files that name
    no source (``SplitMode=none``, a copied journal) are read together and
    attributed to nobody (:data:`UNNAMED_SOURCE`): their records are unverified.
    """
    by_host: dict[str, list[str]] = {}
    loose: list[str] = []
    for path in sorted(paths):
        match = _REMOTE_FILE.fullmatch(os.path.basename(path))
        if match:
            by_host.setdefault(match.group(1), []).append(path)
        else:
            loose.append(path)
    sources = [
        Source(files=tuple(files), origin=origin_for(host, hosts, resolve=resolve))
        for host, files in sorted(by_host.items())
    ]
    if loose:
        sources.append(Source(files=tuple(loose), origin=Origin(UNNAMED_SOURCE, frozenset())))
    return sources


def journal_files(directory: str) -> list[str]:
    """The journal files in a collector's directory (and its subdirectories)."""
    found: list[str] = []
    for root, _dirs, names in os.walk(directory):
        found += [os.path.join(root, n) for n in names if n.endswith((".journal", ".journal~"))]
    if not found and not os.path.isdir(directory):
        raise ReadError(f"{directory}: no such directory")
    return found


def journalctl_argv(
    source: Source | str | None,
    identifier: str,
    since: datetime | None,
    until: datetime | None,
    *,
    follow: bool = False,
    lines: int | None = None,
    matches: Sequence[str] = (),
) -> list[str]:
    """The ``journalctl`` command line that reads (or follows) the gatekeeper's entries.

    ``source`` is a :class:`Source` or, as before, a namespace name (None:
    the system journal). ``matches`` are further ``FIELD=value`` matches
    (see :meth:`Filters.matches`); journald ANDs different fields and ORs
    repeated ones, and answers them from its field index.
    """
    if not isinstance(source, Source):
        source = Source(namespace=source)
    argv = ["journalctl", "--output=json", "--no-pager", "--quiet"]
    argv.append("--output-fields=" + ",".join(OUTPUT_FIELDS + NATIVE_FIELDS))
    argv += source.options()
    if since is not None:
        argv.append(f"--since=@{since.timestamp():.6f}")
    if until is not None:
        argv.append(f"--until=@{until.timestamp():.6f}")
    if follow:
        argv.append("--follow")
        if since is None:
            argv.append(f"--lines={lines if lines is not None else 10}")
    argv.append(f"SYSLOG_IDENTIFIER={identifier}")
    argv += matches
    return argv


def stream_journal(
    argv: Sequence[str], config: TrustConfig, origin: Origin | None = None
) -> Iterator[Entry]:
    """Yield entries as journalctl prints them, one line at a time (bounded memory).

    journalctl is stopped when the caller stops early; a journalctl that
    fails before printing anything raises :class:`ReadError`.
    """
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=errors, bufsize=1 << 16
            )
        except OSError as error:
            raise ReadError(f"journalctl: {error}") from error
        assert process.stdout is not None  # noqa: S101 - Popen(stdout=PIPE) guarantees it
        printed = False
        try:
            for line in process.stdout:
                printed = True
                entry = from_journal(line, config, origin)
                if entry is not None:
                    yield entry
        finally:
            process.stdout.close()
            if process.poll() is None:
                process.terminate()
            try:
                code = process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
        if code not in (0, -15) and not printed:
            errors.seek(0)
            message = errors.read(4096).decode("utf-8", errors="replace").strip()
            raise ReadError(f"journalctl failed ({code}): {message}")


def read_journal(argv: Sequence[str], config: TrustConfig) -> list[Entry]:
    """Run journalctl once and parse every entry (small reads; tests)."""
    return list(stream_journal(argv, config))


def follow_journal(argv: Sequence[str], config: TrustConfig) -> Iterator[Entry]:
    """Yield entries as journalctl ``--follow`` prints them; stop journalctl on exit."""
    return stream_journal(argv, config)


def merge_by_time(streams: Sequence[Iterator[Entry]]) -> Iterator[Entry]:
    """Several time-ordered streams (one per host) as one, in time order."""
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda e: e.time)


def access_hint(source: Source | None = None) -> str | None:
    """How to get journal read access, when the caller lacks it (else None).

    On Debian, membership in ``systemd-journal`` (or ``adm``) grants read
    access to the system journal and namespaces; without it journalctl
    silently shows only the caller's own entries.
    """
    if os.geteuid() == 0 or (source is not None and (source.files or source.directory)):
        return None
    import grp  # noqa: PLC0415 - only for this hint

    groups = set(os.getgroups())
    for name in ("systemd-journal", "adm", "wheel"):
        with contextlib.suppress(KeyError):
            if grp.getgrnam(name).gr_gid in groups:
                return None
    return (
        "add yourself to the systemd-journal group (adduser $USER systemd-journal, "
        "then log in again) or run as root"
    )


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
    import struct  # noqa: PLC0415 - only for this check

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

#: The events ``--sessions`` is built from.
SESSION_EVENTS: Final = ("connect", "join", "leave")


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
    events: tuple[str, ...] = ()

    def in_window(self, when: datetime) -> bool:
        """Whether ``when`` lies in ``[since, until)``."""
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )

    def _wanted(self) -> tuple[tuple[str, str | None], ...]:
        return (
            ("user", self.user),
            ("person", self.person),
            ("session", self.session),
            ("decision", self.decision),
            ("connection_id", self.connection),
        )

    def matches(self, *, sessions: bool = False) -> list[str]:
        """The journalctl matches that do this filtering inside journald.

        The gatekeeper writes every filtered field as a native
        ``GATEKEEPER_*`` field (escaped, like the record's text), so journald
        answers from its index instead of the reader filtering every record.
        For ``--sessions`` only what every connect, join and leave record
        carries (user, session) is pushed down; the rest is decided on the
        joined visit. The event type is not, there: a forged join or leave
        must still show (flagged) beside the visit it tried to end.
        """
        pushed = {"user", "session"} if sessions else None
        out = [
            f"GATEKEEPER_{name.upper()}={escape(value)}"
            for name, value in self._wanted()
            if value is not None and (pushed is None or name in pushed)
        ]
        events = () if sessions else self.events
        out += [f"GATEKEEPER_EVENT={event}" for event in events]
        return out

    def match(self, entry: Entry) -> bool:
        """Whether one record passes every filter (journald already did most of it)."""
        record = entry.record
        for name, want in self._wanted():
            if want is not None and str(record.get(name)) != want:
                return False
        if self.events and entry.event not in self.events:
            return False
        if self.trusted_only and entry.trust != "trusted":
            return False
        return self.in_window(entry.time)


# --------------------------------------------------------------------------- sessions


@dataclass(eq=False)
class GuestSession:
    """One guest's visit: the connect record and, when hooks ran, its join and leave."""

    connect: Entry | None
    join: Entry | None = None
    leave: Entry | None = None
    #: Its pid was reused before a leave (or join) record came: it ended unrecorded.
    lost: bool = False
    closed: bool = False
    seq: int = 0

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
            return "no-leave-record" if self.lost else "attached"
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

    All of them at once, in start order (see :class:`SessionJoiner`, which
    :func:`stream_sessions` uses for journals of any size).
    """
    joiner = SessionJoiner()
    for entry in sorted(entries, key=lambda e: e.time):
        joiner.feed(entry)
    joiner.finish()
    return sorted(joiner.drain(final=True), key=lambda v: v.start)


_Key = tuple[str | None, str]


class SessionJoiner:
    """Joins a time-ordered stream of records into visits, keeping only open ones.

    The key is the pid (per host): the gatekeeper execs tmux, so the
    host-side records' ``client_pid`` is the connect record's ``pid``. Pids
    are reused, so a join takes the latest earlier connect with that pid that
    has no join yet, and a leave the latest earlier join without a leave.
    Records that are not trusted only join each other: they show, flagged, on
    lines of their own and never end, shorten or hijack a trusted visit.

    Memory stays bounded whatever the journal holds: a visit is let go once
    it ended (its leave arrived), a connect that no join followed within
    :attr:`JOIN_GRACE` is closed as ``no-join-record``, and a new connect
    with the same pid closes what that pid left open (the earlier process is
    gone). Finished visits wait only until every earlier-started visit is
    finished too, so they come out in start order; at most
    :attr:`MAX_WAITING` of them wait (past that the oldest is let go, so
    a visit left open for very long may print a little out of order).
    """

    JOIN_GRACE: Final = timedelta(minutes=5)
    MAX_WAITING: Final = 50_000

    def __init__(self) -> None:
        """Start empty."""
        self._connects: dict[_Key, list[GuestSession]] = {}
        self._joins: dict[_Key, list[GuestSession]] = {}
        self._unjoined: deque[tuple[datetime, weakref.ref[GuestSession]]] = deque()
        self._open: list[tuple[datetime, int, GuestSession]] = []
        self._done: list[tuple[datetime, int, GuestSession]] = []
        self._count = 0

    def _start(self, visit: GuestSession) -> None:
        self._count += 1
        visit.seq = self._count
        heapq.heappush(self._open, (visit.start, visit.seq, visit))

    def _close(self, visit: GuestSession) -> None:
        if visit.closed:
            return
        visit.closed = True
        heapq.heappush(self._done, (visit.start, visit.seq, visit))

    @staticmethod
    def _forget(table: dict[_Key, list[GuestSession]], key: _Key, visit: GuestSession) -> None:
        candidates = table.get(key)
        if candidates and visit in candidates:
            candidates.remove(visit)
            if not candidates:
                del table[key]

    def feed(self, entry: Entry) -> None:
        """Take the next record (records arrive in time order)."""
        self._expire(entry.time)
        record = entry.record
        if entry.event == "connect":
            if record.get("decision") != "allow" or not record.get("session"):
                return
            key = (entry.host, str(record.get("pid")))
            self._reuse(key, entry.trust == "trusted")
            visit = GuestSession(entry)
            self._start(visit)
            self._connects.setdefault(key, []).append(visit)
            self._unjoined.append((visit.start, weakref.ref(visit)))
        elif entry.event == "join":
            key = (entry.host, str(record.get("client_pid")))
            found = _latest(self._connects.get(key, []), record.get("session"), entry)
            if found is None:
                found = GuestSession(None, join=entry)
                self._start(found)
            else:
                self._forget(self._connects, key, found)
                found.join = entry
            self._joins.setdefault(key, []).append(found)
        elif entry.event == "leave":
            key = (entry.host, str(record.get("client_pid")))
            found = _latest(self._joins.get(key, []), record.get("session"), entry)
            if found is None:
                found = GuestSession(None, leave=entry)
                self._start(found)
            else:
                self._forget(self._joins, key, found)
                found.leave = entry
            self._close(found)

    def _reuse(self, key: _Key, trusted: bool) -> None:
        """A new connect from this pid: what the pid left open has ended, unrecorded."""
        for table in (self._connects, self._joins):
            for visit in list(table.get(key, [])):
                if (visit.trust == "trusted") == trusted:
                    visit.lost = True
                    self._forget(table, key, visit)
                    self._close(visit)

    def _expire(self, now: datetime) -> None:
        # Joined (or finished and freed) connects leave the front at once; one that
        # no join followed waits out the grace, then is closed as no-join-record.
        while self._unjoined:
            start, ref = self._unjoined[0]
            visit = ref()
            waiting = visit is not None and not visit.closed and visit.join is None
            if waiting and start + self.JOIN_GRACE >= now:
                return
            self._unjoined.popleft()
            if waiting and visit is not None and visit.connect is not None:
                key = (visit.connect.host, str(visit.connect.record.get("pid")))
                self._forget(self._connects, key, visit)
                self._close(visit)

    @property
    def held(self) -> int:
        """How many visits are held (open, or finished and waiting their turn)."""
        return (
            sum(len(v) for v in self._connects.values())
            + sum(len(v) for v in self._joins.values())
            + len(self._done)
        )

    def finish(self) -> None:
        """The stream ended: every visit still open is final as it is."""
        for _start, _seq, visit in self._open:
            self._close(visit)
        self._unjoined.clear()
        self._connects.clear()
        self._joins.clear()

    def drain(self, *, final: bool = False) -> Iterator[GuestSession]:
        """Finished visits whose turn has come (all of them after :meth:`finish`)."""
        while self._done:
            while self._open and self._open[0][2].closed:
                heapq.heappop(self._open)
            first_open = self._open[0][0] if self._open else None
            start = self._done[0][0]
            if not final and first_open is not None and start > first_open:
                if len(self._done) <= self.MAX_WAITING:
                    return
                if len(self._open) > 2 * self.MAX_WAITING:
                    self._open = [item for item in self._open if not item[2].closed]
                    heapq.heapify(self._open)
            yield heapq.heappop(self._done)[2]


#: ``--sessions`` with a narrow filter collects at most this many connects first.
TARGETED_CONNECTS: Final = 2000


def targeted_session_entries(
    read: Callable[[Sequence[str], datetime | None], Iterator[Entry]], filters: Filters
) -> Iterator[Entry] | None:
    """The records a narrow ``--sessions`` needs, in two indexed queries; None: read all.

    ``--person``, ``--connection`` and ``--decision`` are carried by connect
    records only (a leave has no person). First the matching connects
    (journald's index does the filtering); then only the join and leave
    records of their accounts, from the first of them on. Records of other
    visits on the same accounts join nothing that matches and are dropped by
    :func:`session_matches`. More than :data:`TARGETED_CONNECTS` connects:
    None, and the caller reads every connect, join and leave instead.
    """
    wanted = Filters(
        user=filters.user,
        person=filters.person,
        session=filters.session,
        decision=filters.decision,
        connection=filters.connection,
        events=("connect",),
    )
    connects: list[Entry] = []
    for entry in read(wanted.matches(), filters.since):
        connects.append(entry)
        if len(connects) > TARGETED_CONNECTS:
            return None
    users = sorted({str(e.record.get("user")) for e in connects if e.record.get("user")})
    if not connects or not users:
        return iter(connects)
    since = min(e.time for e in connects)
    matches = ["GATEKEEPER_EVENT=join", "GATEKEEPER_EVENT=leave"]
    matches += [f"GATEKEEPER_USER={escape(user)}" for user in users]
    if filters.session is not None:
        matches.append(f"GATEKEEPER_SESSION={escape(filters.session)}")
    connects.sort(key=lambda e: e.time)
    return heapq.merge(connects, read(matches, since), key=lambda e: e.time)


def stream_sessions(entries: Iterable[Entry], filters: Filters) -> Iterator[GuestSession]:
    """The visits in ``entries`` that pass ``filters``, in start order, as they end."""
    joiner = SessionJoiner()
    for entry in entries:
        joiner.feed(entry)
        for visit in joiner.drain():
            if session_matches(visit, filters):
                yield visit
    joiner.finish()
    for visit in joiner.drain(final=True):
        if session_matches(visit, filters):
            yield visit


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
