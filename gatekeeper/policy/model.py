"""Plain, frozen values shared by every stage of a connection.

These are the compiled form of the policy and the connection, used by the
pure stages (:mod:`gatekeeper.login.decide`, :mod:`gatekeeper.login.plan`). They import
only the standard library so the decision core stays cheap to import and free
of I/O; :mod:`gatekeeper.policy.loader` validates the TOML with pydantic and compiles
it into these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    # Annotations only: ipaddress stays off the login path unless a grant has `from`.
    import ipaddress
    from collections.abc import Mapping
    from datetime import datetime

    Network = ipaddress.IPv4Network | ipaddress.IPv6Network

Mode = Literal["read-only", "read-write"]
IdentitySource = Literal["ssh-user-auth", "authorized-keys-command"]
SSH_USER_AUTH: IdentitySource = "ssh-user-auth"
AUTHORIZED_KEYS_COMMAND: IdentitySource = "authorized-keys-command"
READ_ONLY: Mode = "read-only"
READ_WRITE: Mode = "read-write"

#: Names a guest may type and tmux may see: sessions, programs, targets.
#: No ``: . / $ @ % ~ = ; *`` (tmux target syntax, SECURITY.md §18).
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: The policy file read by ``gatekeeper`` and every ``gatekeeperctl`` command (SPEC §3).
DEFAULT_PATH: Final = "/etc/gatekeeper.toml"


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Where and how the connection record is written."""

    sink: Literal["journald", "file"] = "journald"
    identifier: str = "gatekeeper"
    journal_socket: str = "/run/systemd/journal/socket"
    file: str = "/var/log/gatekeeper/audit.jsonl"
    on_failure: Literal["deny", "allow"] = "deny"


RECORDINGS_ROOT: Final = "/var/lib/gatekeeper/recordings"


@dataclass(frozen=True, slots=True)
class Session:
    """A shared tmux session: its own server at ``socket``, owned by ``owner``."""

    name: str
    socket: str
    owner: str
    target: str
    #: ``off``, ``on`` (best effort) or ``required`` (no guest sees it unrecorded).
    record: str = "off"
    #: The directory the host's recorder writes asciicast files to ("" = the default).
    recordings: str = ""
    #: Bytes per recording file before a continuation file is started.
    record_limit: int = 64 * 1024 * 1024
    #: Whether the host's own clients are told when a guest joins or leaves.
    announce: bool = True

    @property
    def recorded(self) -> bool:
        """Whether guests of this session are recorded (and told so before attach)."""
        return self.record != "off"

    @property
    def recordings_dir(self) -> str:
        """Where this session's recordings go."""
        return self.recordings or f"{RECORDINGS_ROOT}/{self.name}"


@dataclass(frozen=True, slots=True)
class Program:
    """One program with a fixed argv; the guest can only pick it by name."""

    name: str
    argv: tuple[str, ...]
    #: Run contained (Landlock + seccomp, :mod:`gatekeeper.login.contain`).
    sandbox: bool = False
    #: Absolute paths a contained program may write and create beneath.
    write: tuple[str, ...] = ()
    #: The file ``argv[0]`` resolved to when the policy was checked:
    #: ``(real path, st_dev, st_ino, st_uid, st_mode)``; ``None`` if not pinned.
    pin: tuple[str, int, int, int, int] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Grant:
    """One ``[[grant]]`` entry; ``index`` is its position in the file."""

    index: int
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()
    from_: tuple[Network, ...] = ()
    session: str | None = None
    program: str | None = None
    mode: Mode = READ_ONLY
    default: bool = False
    not_before: datetime | None = None
    expires: datetime | None = None

    @property
    def label(self) -> str:
        """The key path of this grant in the policy file, e.g. ``grant[2]``."""
        return f"grant[{self.index}]"


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. ``sha256`` is the hash of the file's bytes."""

    audit: AuditConfig = field(default_factory=AuditConfig)
    tmux_binary: str = "/usr/bin/tmux"
    #: Where the person comes from (``[identity] source``); people map to key fingerprints.
    identity_source: IdentitySource = "ssh-user-auth"
    people: Mapping[str, frozenset[str]] = field(default_factory=dict)
    sessions: Mapping[str, Session] = field(default_factory=dict)
    programs: Mapping[str, Program] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    sha256: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything known about one SSH connection, read once at the edge.

    ``user``/``uid``/``groups`` come from the kernel and the user database,
    never from ``$USER``. ``key_fingerprints`` come from ``SSH_USER_AUTH``,
    which the guest account can write (SECURITY.md §12): they attribute, they
    do not separate privileges.
    """

    user: str
    uid: int
    gid: int = -1
    home: str = "/"
    groups: frozenset[str] = frozenset()
    key_fingerprints: tuple[str, ...] = ()
    #: ``GATEKEEPER_PERSON`` as sshd set it from the authorized-keys command's
    #: ``environment=`` option (used only when the policy says so).
    sshd_person: str | None = None
    client_addr: str | None = None
    client_port: int | None = None
    server_addr: str | None = None
    server_port: int | None = None
    tty: str | None = None
    has_tty: bool = False
    term: str | None = None
    original_command: bytes | None = None
