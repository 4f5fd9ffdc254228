"""The audit record: one per connection, written before exec (SPEC §5).

Field names are an interface (like libtmux's rule for log fields): they are
constants here, documented in :data:`FIELDS` (the README's table is tested
against it) and pinned by tests. The record is rendered through structlog
into journald native fields, with the whole record as one JSON object in
``MESSAGE``:

* JSON is produced by ``json.dumps(ensure_ascii=True)`` - never by string
  concatenation (corpus LOG-04), and safe for surrogate-escaped invalid
  UTF-8 (SECURITY.md §25, LOG-06);
* every text that came from the guest is escaped to printable ASCII before
  it is stored (LOG-03, LOG-08) and capped, with the SHA-256 of the whole
  (LOG-07);
* a record that cannot be written raises :class:`AuditError`; the caller
  denies (exit 75) unless the policy says ``on_failure = "allow"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from gatekeeper.login import journald
from gatekeeper.login.textsafe import escape, escape_bytes
from gatekeeper.policy.model import AuditConfig

MAX_TEXT: Final = 2048

#: (field, meaning) - the documented record; tests hold the code to it.
FIELDS: Final[tuple[tuple[str, str], ...]] = (
    (
        "event",
        "`connect` for a login; host side: `share`, `join`, `leave`, `kick`, `revoke`, `record`",
    ),
    ("decision", "`allow`, `deny` or `error`"),
    ("reason", "machine-readable reason, e.g. `granted`, `no_matching_grant`, `policy_invalid`"),
    ("detail", "human-readable detail for the admin (never shown to the guest)"),
    ("exit_code", "the gatekeeper's exit code when it did not exec (sysexits)"),
    ("user", "the account, from the kernel uid and the user database"),
    ("uid", "the numeric uid"),
    ("person", "the person whose key authenticated (policy `[people]`), or null"),
    (
        "person_source",
        (
            "where `person` came from: `authorized-keys-command` (sshd's word, "
            "GATEKEEPER_PERSON), `ssh-user-auth` (the guest-writable file), or null"
        ),
    ),
    ("key_fingerprint", "SHA256 fingerprint of the authenticating key, from SSH_USER_AUTH"),
    ("client_addr", "client address, from SSH_CONNECTION"),
    ("client_port", "client port"),
    ("server_addr", "server address"),
    ("server_port", "server port"),
    ("tty", "the pty (SSH_TTY), or null without one"),
    ("original_command", "SSH_ORIGINAL_COMMAND, escaped to printable ASCII, capped"),
    ("original_command_bytes", "length of SSH_ORIGINAL_COMMAND in bytes"),
    ("original_command_sha256", "SHA-256 of the raw command when it was truncated"),
    ("request", "the parsed request, e.g. `attach shared`, `malformed:metacharacter`"),
    ("grant", "the grant that allowed it, e.g. `grant[0]`"),
    ("session", "the session name from the policy"),
    ("program", "the program name from the policy"),
    ("mode", "`read-only` or `read-write` for sessions"),
    ("contained", "programs: `true` if it ran contained (Landlock + seccomp), else `false`"),
    ("argv", "the exact argv that is exec'd"),
    ("policy_sha256", "SHA-256 of the policy file's bytes"),
    ("connection_id", "random id of this connection; the `ref` shown to the guest"),
    ("pid", "the gatekeeper's pid (= tmux's `client_pid` after exec)"),
    ("version", "ssh-gatekeeper version"),
    ("timestamp", "UTC, ISO 8601"),
    ("client_pid", "host-side events: pid of the tmux client (= the connect record's `pid`)"),
    ("duration_seconds", "`leave`: seconds between join and leave"),
    ("ended", "`leave`: `detached`, `kicked`, `expired`, `recording-failed` or `server-exit`"),
    ("by", "host-side events: the account that ran the command"),
    ("changes", "`share`: what was (re)applied"),
    ("recordings", "`join`/`leave`/`record`: the asciicast files that cover the visit"),
    ("message_id", "journald MESSAGE_ID of the event type (see the catalog)"),
)
FIELD_NAMES: Final = frozenset(name for name, _ in FIELDS)

#: (reason, meaning) - every value of the ``reason`` field; closed: a new reason is
#: added here and in the README's table (tests hold the code, the stages' Literal
#: types and the README to it).
REASONS: Final[tuple[tuple[str, str], ...]] = (
    ("granted", "allowed: the plan was exec'd"),
    ("inform_list", "allowed: `list` was answered"),
    ("inform_whoami", "allowed: `whoami` was answered"),
    ("inform_help", "allowed: `help` was answered"),
    ("unknown_command", "denied: not a gatekeeper request (scp, sftp, a shell command, ...)"),
    ("malformed_request", "denied: a request word with bad arguments or characters"),
    (
        "identity_mismatch",
        "denied: GATEKEEPER_PERSON is missing, no person, or not the SSH_USER_AUTH key's",
    ),
    ("no_matching_grant", "denied: no grant matches the identity, address, time and target"),
    ("no_default", "denied: a login without a command, and no default grant"),
    ("needs_tty", "denied: `attach`/`run` without a terminal (`ssh -t`)"),
    ("internal_error", "error: a bug; denied (exit 70)"),
    ("bad_invocation", "error: `gatekeeper` was started with arguments other than `--policy`"),
    ("policy_missing", "error: the policy file does not exist"),
    ("policy_unreadable", "error: the policy file cannot be read"),
    ("policy_unsafe", "error: the policy file or a directory above it is writable by non-root"),
    ("policy_invalid", "error: the policy does not validate (`gatekeeperctl check` says why)"),
    ("program_missing", "denied: the program (or tmux) is not executable on this host"),
    ("uncontained_program", "denied: an account that can attach may run only contained programs"),
    ("program_unsafe", "denied: the program can spawn commands and is not contained"),
    ("program_changed", "denied: argv[0] resolves to another file than `check` pinned"),
    ("containment_unavailable", "denied: Landlock/seccomp cannot contain the program here"),
    ("containment_failed", "error: enforcing containment failed after the allow record"),
    ("owner_unknown", "denied: the session's owner account does not exist"),
    ("socket_missing", "denied: the session socket does not exist"),
    ("socket_inaccessible", "denied: the guest cannot reach the session socket"),
    ("socket_not_a_socket", "denied: the session path is not a socket"),
    ("socket_owner_mismatch", "denied: the socket is not owned by the session's owner"),
    ("socket_dir_unsafe", "denied: the socket's directory is not the owner's or root's"),
    (
        "socket_path_unsafe",
        "denied: the socket path passes a symlink or a directory others control",
    ),
    ("session_stale", "denied: the socket exists but no tmux server listens"),
    ("session_missing", "denied: the socket vanished before the server could be reached"),
    ("session_inaccessible", "denied: the server refused the guest's connection"),
    (
        "session_not_shared",
        "denied: the host has not granted server-access (`gatekeeperctl share`)",
    ),
    ("expired", "`revoke`: the guest's grant ended while attached"),
    ("not_granted", "`revoke`: `share` found the policy no longer grants the guest"),
)
REASON_NAMES: Final = frozenset(name for name, _ in REASONS)

#: Record fields mirrored as journald native fields, for ``journalctl GATEKEEPER_USER=pair``.
JOURNAL_FIELDS: Final = (
    "event",
    "decision",
    "user",
    "person",
    "client_addr",
    "session",
    "program",
    "mode",
    "connection_id",
)
#: journald MESSAGE_ID per event type (``journalctl -x`` explains each via the catalog).
#: Fixed forever: a new event type gets a new id, an id is never reused.
MESSAGE_IDS: Final = {
    "connect-allow": "d70adb69f9f7432fb8da87a871be838c",
    "connect-deny": "931a5d69c1f3471783ef43c1c6f1a08c",
    "connect-error": "5789b8eab73a41949983dafb51e8c99f",
    "join": "2eb7923c791d4146aabe278c61b4ae1e",
    "leave": "0105c4a3bfd64c8abb0de688f16b59d2",
    "kick": "b20e20e2ad6542cfb97766b893228e6f",
    "revoke": "a245a2a3c43a4dcdb1d7070eb4845eda",
    "share": "e5cd6f6bc0d94febbf07c7b26573cc00",
    "record": "7c3f0b5e9a2d4e61b8f4d2a91c6e0f37",
}
PRIORITY: Final = {"allow": "6", "deny": "4", "error": "3"}
_METHOD: Final = {"allow": "info", "deny": "warning", "error": "error"}


class AuditError(Exception):
    """The record could not be written."""


def cap(text: str, raw: bytes) -> tuple[str, str | None]:
    """Cap escaped text at :data:`MAX_TEXT`; return it and the raw SHA-256 if cut."""
    if len(text) <= MAX_TEXT:
        return text, None
    return text[:MAX_TEXT] + "...", hashlib.sha256(raw).hexdigest()


def command_fields(original: bytes | None) -> dict[str, Any]:
    """The ``original_command*`` fields for raw guest bytes."""
    if original is None:
        return {"original_command": None, "original_command_bytes": 0}
    text, digest = cap(escape_bytes(original), original)
    fields: dict[str, Any] = {"original_command": text, "original_command_bytes": len(original)}
    if digest is not None:
        fields["original_command_sha256"] = digest
    return fields


def message_id(record: Mapping[str, Any]) -> str | None:
    """The fixed journald ``MESSAGE_ID`` for the record's event type, if it has one."""
    event = str(record.get("event", "connect"))
    if event == "connect":
        event = f"connect-{record.get('decision', 'error')}"
    return MESSAGE_IDS.get(event)


def journal_fields(record: Mapping[str, Any], identifier: str, message: str) -> dict[str, str]:
    """The native journald fields for a record (values escaped, no newlines possible)."""
    decision = str(record.get("decision", "error"))
    fields = {
        "MESSAGE": message,
        "PRIORITY": PRIORITY.get(decision, "3"),
        "SYSLOG_IDENTIFIER": identifier,
    }
    if (mid := message_id(record)) is not None:
        fields["MESSAGE_ID"] = mid
    for name in JOURNAL_FIELDS:
        value = record.get(name)
        if value is not None:
            fields["GATEKEEPER_" + name.upper()] = escape(str(value))
    return fields


def _render(identifier: str) -> Callable[[Any, str, Any], dict[str, Any]]:
    def render(_logger: Any, _method: str, event_dict: Any) -> dict[str, Any]:
        if (mid := message_id(event_dict)) is not None:
            event_dict["message_id"] = mid
        message = json.dumps(event_dict, ensure_ascii=True, separators=(",", ":"), default=str)
        return {"fields": journal_fields(event_dict, identifier, message)}

    return render


class _Sink:
    """A structlog "logger" that hands the rendered fields to a writer."""

    def __init__(self, write: Callable[[Mapping[str, str]], None]) -> None:
        self._write = write

    def msg(self, *, fields: Mapping[str, str]) -> None:
        self._write(fields)

    info = warning = error = msg


def _journald_writer(socket_path: str) -> Callable[[Mapping[str, str]], None]:
    def write(fields: Mapping[str, str]) -> None:
        journald.send(socket_path, fields)

    return write


def _file_writer(path: str) -> Callable[[Mapping[str, str]], None]:
    def write(fields: Mapping[str, str]) -> None:
        line = (fields["MESSAGE"] + "\n").encode("ascii")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o640)
        try:
            # One write() of a short line with O_APPEND is atomic for regular files.
            if os.write(fd, line) != len(line):
                raise OSError("short write to the audit file")
            os.fsync(fd)
        finally:
            os.close(fd)

    return write


def writer_for(config: AuditConfig) -> Callable[[Mapping[str, str]], None]:
    """The raw writer for the configured sink."""
    if config.sink == "file":
        return _file_writer(config.file)
    return _journald_writer(config.journal_socket)


def emit(
    config: AuditConfig,
    record: Mapping[str, Any],
    write: Callable[[Mapping[str, str]], None] | None = None,
) -> None:
    """Render ``record`` through structlog and write it; raise :class:`AuditError`.

    structlog is imported here, not at module import, so that importing this
    module (e.g. for :data:`FIELDS`) costs nothing; the logger is built per
    call and nothing is configured globally.
    """
    import structlog  # noqa: PLC0415 - deferred: see docstring

    fields = dict(record)
    event = str(fields.pop("event", "connect"))
    fields.pop("timestamp", None)
    logger = structlog.wrap_logger(
        _Sink(write or writer_for(config)),
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _render(config.identifier),
        ],
        wrapper_class=structlog.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=False,
    )
    method = getattr(logger, _METHOD.get(str(fields.get("decision")), "error"))
    try:
        method(event, **fields)
    except (OSError, ValueError, UnicodeError) as error:
        raise AuditError(f"{type(error).__name__}: {error}") from error
