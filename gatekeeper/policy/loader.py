"""The policy file: TOML, validated by pydantic in strict mode, compiled to :mod:`model`.

Fail closed (SPEC §3): a policy that is missing, unreadable, invalid or
writable by anyone but root raises :class:`PolicyError`, and the connection
path denies everything with exit 78. Unknown keys are errors (a typo such as
``form = [...]`` for ``from`` must not silently allow every address, as it
did in authprogs). TOML is parsed with :mod:`tomllib`, which cannot execute
code. Every error names the file, the key path and what was expected.

Strictness: TOML-native types only (``str``, ``bool``, ``int``, ``list``,
datetime, ``Literal``), because strict mode rejects a TOML string for
``Path``/``Enum`` fields and a TOML list for ``tuple``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gatekeeper.login import fsafety
from gatekeeper.policy import keys, model
from gatekeeper.policy.model import DEFAULT_PATH, NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: pydantic's last ``loc`` element when a dict key (not its value) is invalid.
_KEY_MARKER: Final = "[key]"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Account = Annotated[str, Field(pattern=_ACCOUNT.pattern)]


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or "\x00" in value:
        raise ValueError("must be an absolute path")
    if any(part in {".", ".."} for part in value.split("/")) or "//" in value:
        raise ValueError("must be a normalised path (no '.', '..' or '//')")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )


class AuditModel(_Strict):
    """Where the one-per-connection audit record goes."""

    sink: Literal["journald", "file"] = "journald"
    """``journald`` (native protocol) or ``file`` (JSON lines)."""
    identifier: str = Field(default="gatekeeper", pattern=_IDENTIFIER.pattern)
    """The journald ``SYSLOG_IDENTIFIER``."""
    journal_socket: str = "/run/systemd/journal/socket"
    """The journald native socket; another namespace's is ``/run/systemd/journal.NS/socket``."""
    file: str = "/var/log/gatekeeper/audit.jsonl"
    """The JSON-lines file when ``sink = "file"``."""
    on_failure: Literal["deny", "allow"] = "deny"
    """What to do when the record cannot be written: ``deny`` (exit 75) or ``allow``."""

    _paths = field_validator("journal_socket", "file")(_absolute_path)


class TmuxModel(_Strict):
    """The tmux binary used for every attach."""

    binary: str = "/usr/bin/tmux"
    """Absolute path of tmux (3.3 or newer)."""

    _paths = field_validator("binary")(_absolute_path)


def _key_entry(value: str) -> str:
    keys.parse_entry(value)  # raises ValueError with what is wrong
    return value


class PersonModel(_Strict):
    """A person, known by the keys they log in with."""

    keys: list[Annotated[str, AfterValidator(_key_entry)]] = Field(min_length=1)
    """Public key lines (``ssh-ed25519 AAAA... comment``) or SHA256 fingerprints
    (``ssh-keygen -lf``, ``SHA256:`` and 43 characters)."""


class IdentityModel(_Strict):
    """Where the gatekeeper learns which person is behind a login."""

    source: Literal["ssh-user-auth", "authorized-keys-command"] = "ssh-user-auth"
    """``ssh-user-auth``: from the key in sshd's ``SSH_USER_AUTH`` file (the guest account
    can rewrite it: attribution only). ``authorized-keys-command``: sshd authenticates
    keys with ``gatekeeper-authorized-keys`` and sets ``GATEKEEPER_PERSON``; the person
    is then sshd's word, and a grant naming accounts and people needs both to match."""


class SessionModel(_Strict):
    """A shared tmux session, served by its own tmux server at ``socket``."""

    socket: str
    """Absolute path of the tmux server socket (one server per shared session)."""
    owner: Account
    """The account that owns the socket (the host); any other owner is refused."""
    target: Name
    """The tmux session name, always matched exactly (``-t =target``)."""
    record: Literal["off", "on", "required"] = "off"
    """Record every pane as asciicast v2 files: ``off``, ``on`` (best effort: a
    recorder failure is audited and reported by ``share``) or ``required`` (a guest
    is admitted only while every pane is recorded; a recorder failure detaches and
    locks out the guests)."""
    recordings: str = ""
    """Directory of the recordings, written by the host, unreadable to guests
    (mode 0700); default ``/var/lib/gatekeeper/recordings/NAME``."""
    record_limit: int = Field(default=64 * 1024 * 1024, ge=65536, le=2**40)
    """Bytes per recording file; a longer recording continues in the next file
    (``..._001.cast``), at most 999 files per pane and period."""
    announce: bool = True
    """Show the host's own tmux clients a line when a guest joins or leaves
    (``false`` turns it off)."""

    _paths = field_validator("socket")(_absolute_path)

    @field_validator("recordings")
    @classmethod
    def _recordings(cls, value: str) -> str:
        if not value:
            return value
        _absolute_path(value)
        if not re.fullmatch(r"/[A-Za-z0-9_./+-]{1,200}", value):
            raise ValueError(
                "must contain only letters, digits and _ . / + - (it reaches tmux and /bin/sh)"
            )
        return value


class ProgramModel(_Strict):
    """A program run with a fixed argv; the guest can only name it.

    An account that can attach to any session may run only contained programs
    (``sandbox = true``): code it runs could otherwise drive the session through
    tmux control mode as the host, read-only or not. Programs that embed an
    interpreter or have shell/filter commands (vim in every build, nvim, emacs, mc,
    interpreters, shells, more, man...) must be contained for every account;
    ``argv[0]`` is judged by its real path (symlinks resolved). Uncontained, only
    ``less -- FILE`` and ``nano --restricted -- FILE`` (or ``rnano``) are known to be
    safe. ``gatekeeperctl check`` reports each case as an error; the gatekeeper
    denies it (exit 78).
    """

    argv: list[str] = Field(min_length=1)
    """The complete argv; ``argv[0]`` is an absolute path. Nothing from the guest is added."""
    sandbox: bool = False
    """Run contained (Linux Landlock + seccomp, unprivileged): the program may read what
    the guest's permissions allow, execute only its own binary, write only beneath
    ``write``, and open no socket and start no process. Required for any program an
    account that can attach to a session may run, and for editors, pagers and
    interpreters that can spawn commands. On a kernel without Landlock the program is
    denied (``gatekeeperctl doctor`` says why)."""
    write: list[str] = []
    """Contained programs only: absolute paths (files or directories) the program may
    write, create and remove beneath; nothing else is writable. Default: none."""

    @field_validator("write")
    @classmethod
    def _write(cls, value: list[str]) -> list[str]:
        for path in value:
            _absolute_path(path)
        return value

    @model_validator(mode="after")
    def _write_needs_sandbox(self) -> ProgramModel:
        if self.write and not self.sandbox:
            raise ValueError("write applies to contained programs only (sandbox = true)")
        return self

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        try:
            _absolute_path(value[0])
        except ValueError as error:
            raise ValueError(f"argv[0] {error}") from None
        if any("\x00" in arg for arg in value):
            raise ValueError("argv elements must not contain NUL")
        return value


class GrantModel(_Strict):
    """Who may use which session or program, from where, and when."""

    model_config = ConfigDict(populate_by_name=False)

    users: list[Account] = []
    """Accounts this grant applies to."""
    groups: list[Account] = []
    """Groups whose members this grant applies to."""
    people: list[Name] = []
    """People (``[people.NAME]``) this grant applies to, by the key they used."""
    from_: list[str] = Field(default=[], alias="from")
    """Client address ranges (CIDR); empty means any address."""
    session: Name | None = None
    """The session this grant opens (exactly one of ``session``/``program``)."""
    program: Name | None = None
    """The program this grant runs (exactly one of ``session``/``program``)."""
    mode: Literal["read-only", "read-write"] | None = None
    """Sessions only: ``read-only`` (default) or ``read-write`` (a shell as the owner)."""
    default: bool = False
    """Use this grant when the guest sends no command."""
    not_before: datetime | None = None
    """The grant starts at this time (with a timezone, e.g. ``2026-12-01T09:00:00Z``)."""
    expires: datetime | None = None
    """The grant ends at this time (with a timezone)."""

    @field_validator("from_")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as error:
                raise ValueError(f"{cidr!r} is not an address range: {error}") from None
        return value

    @field_validator("not_before", "expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("must include a timezone, e.g. 2026-12-31T23:59:59Z")
        return value

    @model_validator(mode="after")
    def _shape(self) -> GrantModel:
        if not (self.users or self.groups or self.people):
            raise ValueError("needs at least one of users, groups, people")
        if (self.session is None) == (self.program is None):
            raise ValueError("needs exactly one of session, program")
        if self.program is not None and self.mode is not None:
            raise ValueError("mode applies to sessions only")
        if self.not_before and self.expires and self.not_before >= self.expires:
            raise ValueError("not_before must be earlier than expires")
        return self


class PolicyModel(_Strict):
    """ssh-gatekeeper policy (``/etc/gatekeeper.toml``)."""

    version: Literal[1]
    """Policy format version; must be 1."""
    audit: AuditModel = AuditModel()
    """Audit sink settings."""
    tmux: TmuxModel = TmuxModel()
    """tmux settings."""
    identity: IdentityModel = IdentityModel()
    """How the person behind a login is known."""
    people: dict[Name, PersonModel] = {}
    """People, by name, with their keys."""
    sessions: dict[Name, SessionModel] = {}
    """Shared sessions, by the name guests use."""
    programs: dict[Name, ProgramModel] = {}
    """Programs, by the name guests use."""
    grant: list[GrantModel] = []
    """Grants; anything not granted is denied."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_an_integer(cls, value: Any) -> Any:
        # Literal[1] alone accepts ``true`` and ``1.0`` (both == 1): strictness
        # means the TOML integer 1 and nothing that merely compares equal.
        if type(value) is not int:
            raise ValueError("Input should be 1")
        return value


@dataclass(frozen=True, slots=True)
class Problem:
    """One error or warning: the key path and what is wrong."""

    path: str
    message: str


class PolicyError(Exception):
    """The policy cannot be used; every request is denied (exit 78)."""

    def __init__(
        self,
        file: str,
        kind: Literal["missing", "unreadable", "unsafe", "invalid"],
        problems: list[Problem],
        audit: model.AuditConfig | None = None,
    ) -> None:
        self.file = file
        self.kind = kind
        self.problems = problems
        #: The ``[audit]`` table when it alone is valid in a trusted file, so the
        #: denial of a broken policy is still recorded where the admin looks.
        self.audit = audit
        super().__init__(self.render())

    def render(self) -> str:
        """One line per problem: ``FILE: KEY.PATH: message``."""
        return "\n".join(
            f"{self.file}: {p.path}: {p.message}" if p.path else f"{self.file}: {p.message}"
            for p in self.problems
        )


def key_path(loc: tuple[int | str, ...]) -> str:
    """``('grant', 0, 'form')`` -> ``grant[0].form``.

    A key that is not a bare TOML key is quoted the way TOML writes it
    (``sessions."a.b"``, with control characters escaped), so a dotted or
    multi-line table name can neither pass for a nested path nor break the
    one-line-per-problem output. pydantic's ``[key]`` marker (the key itself is
    invalid) is dropped: the path already ends at that key.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != _KEY_MARKER:
            text = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=True)
            out += ("." if out else "") + text
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["loc"] and error["loc"][-1] == _KEY_MARKER:
        return f"invalid name: {message}"
    return message


def _references(data: PolicyModel) -> list[Problem]:
    problems: list[Problem] = []
    for index, grant in enumerate(data.grant):
        where = f"grant[{index}]"
        if grant.session is not None and grant.session not in data.sessions:
            problems.append(Problem(f"{where}.session", f"unknown session {grant.session!r}"))
        if grant.program is not None and grant.program not in data.programs:
            problems.append(Problem(f"{where}.program", f"unknown program {grant.program!r}"))
        problems.extend(
            Problem(f"{where}.people", f"unknown person {person!r}")
            for person in grant.people
            if person not in data.people
        )
    owners: dict[str, str] = {}
    for name, person in data.people.items():
        for position, entry in enumerate(person.keys):
            key = keys.parse_entry(entry)  # validated already: a full line becomes its fingerprint
            if key in owners and owners[key] != name:
                problems.append(
                    Problem(
                        f"people.{name}.keys[{position}]",
                        f"key {key} also belongs to {owners[key]!r}",
                    )
                )
            owners[key] = name
    return problems


def _compile_audit(audit: AuditModel) -> model.AuditConfig:
    return model.AuditConfig(
        sink=audit.sink,
        identifier=audit.identifier,
        journal_socket=audit.journal_socket,
        file=audit.file,
        on_failure=audit.on_failure,
    )


def _salvage_audit(document: dict[str, Any]) -> model.AuditConfig | None:
    try:
        return _compile_audit(AuditModel.model_validate(document.get("audit", {})))
    except ValidationError:
        return None


def _compile(data: PolicyModel, sha256: str, path: str) -> model.Policy:
    return model.Policy(
        audit=_compile_audit(data.audit),
        tmux_binary=data.tmux.binary,
        identity_source=data.identity.source,
        people={
            name: frozenset(keys.parse_entry(entry) for entry in p.keys)
            for name, p in data.people.items()
        },
        sessions={
            name: model.Session(
                name,
                s.socket,
                s.owner,
                s.target,
                record=s.record,
                recordings=s.recordings,
                record_limit=s.record_limit,
                announce=s.announce,
            )
            for name, s in data.sessions.items()
        },
        programs={
            name: model.Program(name, tuple(p.argv), p.sandbox, tuple(p.write))
            for name, p in data.programs.items()
        },
        grants=tuple(
            model.Grant(
                index=index,
                users=frozenset(g.users),
                groups=frozenset(g.groups),
                people=frozenset(g.people),
                from_=tuple(ipaddress.ip_network(c) for c in g.from_),
                session=g.session,
                program=g.program,
                mode=g.mode or model.READ_ONLY,
                default=g.default,
                not_before=g.not_before,
                expires=g.expires,
            )
            for index, g in enumerate(data.grant)
        ),
        sha256=sha256,
        path=path,
    )


def parse(
    raw: bytes, file: str = "<policy>", sha256: str | None = None
) -> tuple[PolicyModel, model.Policy]:
    """Validate policy bytes (no file-safety checks); raise :class:`PolicyError`.

    ``sha256``: the bytes' hex SHA-256 when the caller has it already.
    """
    sha256 = sha256 or hashlib.sha256(raw).hexdigest()
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise PolicyError(file, "invalid", [Problem("", f"not UTF-8: {error}")]) from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(file, "invalid", [Problem("", f"TOML syntax: {error}")]) from None
    try:
        data = PolicyModel.model_validate(document)
    except ValidationError as error:
        problems = [Problem(key_path(e["loc"]), _message(e)) for e in error.errors()]
        raise PolicyError(file, "invalid", problems, _salvage_audit(document)) from None
    problems = _references(data)
    if problems:
        raise PolicyError(file, "invalid", problems, _compile_audit(data.audit))
    return data, _compile(data, sha256, file)


def load(path: str = DEFAULT_PATH, trusted_uids: tuple[int, ...] = (0,)) -> model.Policy:
    """Read, check and validate the policy file; raise :class:`PolicyError`."""
    try:
        raw = fsafety.read_trusted(path, trusted_uids)
    except FileNotFoundError:
        raise PolicyError(path, "missing", [Problem("", "no such file")]) from None
    except fsafety.UnsafeFileError as error:
        raise PolicyError(path, "unsafe", [Problem("", f"unsafe: {error}")]) from None
    except OSError as error:
        raise PolicyError(path, "unreadable", [Problem("", f"cannot read: {error}")]) from None
    return parse(raw, path)[1]


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the policy (for editors, ``gatekeeperctl schema``)."""
    schema = PolicyModel.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ssh-gatekeeper policy"
    return schema
