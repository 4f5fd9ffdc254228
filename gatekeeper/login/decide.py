"""The decision: pure, total, deterministic (SPEC §3 "Decision rules").

``decide(connection, request, policy, now)`` never raises and never does I/O:
the same inputs always give the same :data:`Decision`. Default deny; a
request is allowed only when some grant matches the identity, the client
address, the time and the target; read-write only when a matching grant gives
read-write, and never for ``watch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, assert_never

from gatekeeper.exitcodes import EX_DENIED, EX_SOFTWARE, EX_USAGE
from gatekeeper.login import request as rq
from gatekeeper.policy.model import (
    AUTHORIZED_KEYS_COMMAND,
    READ_ONLY,
    READ_WRITE,
    SSH_USER_AUTH,
    Connection,
    Grant,
    Mode,
    Policy,
)

if TYPE_CHECKING:
    from datetime import datetime


DenyReason = Literal[
    "unknown_command",
    "malformed_request",
    "identity_mismatch",
    "no_matching_grant",
    "no_default",
    "needs_tty",
    "internal_error",
]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking: the account, and the person behind the key if known."""

    user: str
    person: str | None
    key_fingerprint: str | None
    #: Where ``person`` came from: ``authorized-keys-command`` (sshd's word),
    #: ``ssh-user-auth`` (the guest-writable file), or None (no person).
    source: str | None = None
    #: Set when the sshd-vouched person and the SSH_USER_AUTH key disagree: deny.
    mismatch: str | None = None


@dataclass(frozen=True, slots=True)
class Entitlement:
    """One thing the identity may use right now, for ``list`` and the menu."""

    kind: Literal["session", "program"]
    name: str
    mode: Mode | None
    default: bool


@dataclass(frozen=True, slots=True)
class AttachSession:
    """Allowed: attach to ``session`` in ``mode`` because of ``grant``."""

    identity: Identity
    grant: Grant
    session: str
    mode: Mode


@dataclass(frozen=True, slots=True)
class RunProgram:
    """Allowed: run ``program`` because of ``grant``."""

    identity: Identity
    grant: Grant
    program: str


@dataclass(frozen=True, slots=True)
class Inform:
    """Allowed: answer an informational request; nothing is executed."""

    identity: Identity
    what: Literal["list", "whoami", "help"]
    json: bool
    entitlements: tuple[Entitlement, ...]


@dataclass(frozen=True, slots=True)
class Deny:
    """Denied, with the reason for the audit record and the exit code."""

    identity: Identity
    reason: DenyReason
    detail: str
    exit_code: int


Decision = AttachSession | RunProgram | Inform | Deny

NEEDS_TTY_TYPES: Final = (AttachSession, RunProgram)


def identify(connection: Connection, policy: Policy) -> Identity:
    """The person behind the login, and where that knowledge came from.

    With ``[identity] source = "authorized-keys-command"`` the person is
    ``GATEKEEPER_PERSON``, which sshd set from the key line the command printed
    (SECURITY.md §29); it must be a person of the policy, and when
    ``SSH_USER_AUTH`` names a key it must be one of that person's keys -
    otherwise the identity carries a ``mismatch`` and the request is denied.
    Without it, the person behind the first presented key the policy knows.
    """
    first = connection.key_fingerprints[0] if connection.key_fingerprints else None
    if policy.identity_source == AUTHORIZED_KEYS_COMMAND:
        person = connection.sshd_person
        if person is None:
            return Identity(connection.user, None, first, None, "sshd set no GATEKEEPER_PERSON")
        keys = policy.people.get(person)
        if keys is None:
            return Identity(connection.user, None, first, None, "GATEKEEPER_PERSON is no person")
        if connection.key_fingerprints and first not in keys:
            return Identity(
                connection.user, None, first, None, f"key {first} is not one of {person}'s keys"
            )
        return Identity(connection.user, person, first, AUTHORIZED_KEYS_COMMAND)
    for fingerprint in connection.key_fingerprints:
        for person, keys in policy.people.items():
            if fingerprint in keys:
                return Identity(connection.user, person, fingerprint, SSH_USER_AUTH)
    return Identity(connection.user, None, first)


def _address_matches(grant: Grant, address: str | None) -> bool:
    if not grant.from_:
        return True
    if address is None:
        return False
    import ipaddress  # noqa: PLC0415 - only grants with `from` pay for it

    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    # An IPv4 client may be reported as ::ffff:a.b.c.d (dual-stack socket) and the
    # admin may write either form: compare both, so neither spelling silently
    # fails to match.
    forms: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [parsed]
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        forms.append(parsed.ipv4_mapped)
    elif isinstance(parsed, ipaddress.IPv4Address):
        forms.append(ipaddress.IPv6Address(f"::ffff:{parsed}"))
    return any(form in network for form in forms for network in grant.from_)


def in_window(grant: Grant, now: datetime) -> bool:
    """Whether ``now`` is inside the grant's ``not_before`` .. ``expires`` window.

    ``not_before`` is inclusive, ``expires`` exclusive. The host side
    (``gatekeeperctl share``'s access list and watcher) asks this same function,
    so tmux's server-access and the gatekeeper never disagree on a boundary.
    """
    if grant.not_before is not None and now < grant.not_before:
        return False
    return not (grant.expires is not None and now >= grant.expires)


def _identity_matches(grant: Grant, connection: Connection, identity: Identity) -> bool:
    if identity.source == AUTHORIZED_KEYS_COMMAND and grant.people:
        # sshd vouches for the person: a grant naming people is theirs alone, and
        # naming accounts too means that person on those accounts.
        if identity.person not in grant.people:
            return False
        if grant.users or grant.groups:
            return connection.user in grant.users or not grant.groups.isdisjoint(connection.groups)
        return True
    return (
        connection.user in grant.users
        or not grant.groups.isdisjoint(connection.groups)
        or (identity.person is not None and identity.person in grant.people)
    )


def matching_grants(
    connection: Connection, identity: Identity, policy: Policy, now: datetime
) -> tuple[Grant, ...]:
    """The grants that apply to this identity, address and time, in file order."""
    return tuple(
        grant
        for grant in policy.grants
        if _identity_matches(grant, connection, identity)
        and _address_matches(grant, connection.client_addr)
        and in_window(grant, now)
        and (grant.session in policy.sessions or grant.program in policy.programs)
    )


def entitlements(grants: tuple[Grant, ...]) -> tuple[Entitlement, ...]:
    """Collapse matching grants into one entry per target, most permissive mode."""
    sessions: dict[str, Entitlement] = {}
    programs: dict[str, Entitlement] = {}
    for grant in grants:
        if grant.session is not None:
            seen = sessions.get(grant.session)
            mode: Mode = READ_WRITE if grant.mode == READ_WRITE else READ_ONLY
            if seen is not None and seen.mode == READ_WRITE:
                mode = READ_WRITE
            sessions[grant.session] = Entitlement(
                "session", grant.session, mode, grant.default or bool(seen and seen.default)
            )
        elif grant.program is not None:
            seen = programs.get(grant.program)
            programs[grant.program] = Entitlement(
                "program", grant.program, None, grant.default or bool(seen and seen.default)
            )
    ordered = sorted(sessions.values(), key=lambda e: e.name)
    ordered += sorted(programs.values(), key=lambda e: e.name)
    return tuple(ordered)


def _best_session_grant(grants: tuple[Grant, ...], session: str) -> Grant | None:
    candidates = [g for g in grants if g.session == session]
    for grant in candidates:
        if grant.mode == READ_WRITE:
            return grant
    return candidates[0] if candidates else None


def _allow_grant(identity: Identity, grant: Grant) -> AttachSession | RunProgram:
    if grant.session is not None:
        return AttachSession(identity, grant, grant.session, grant.mode)
    # A grant names exactly one of session/program (validated by the policy).
    assert grant.program is not None  # noqa: S101 - invariant of Grant, for mypy
    return RunProgram(identity, grant, grant.program)


def _decide(connection: Connection, request: rq.Request, policy: Policy, now: datetime) -> Decision:
    identity = identify(connection, policy)

    def deny(reason: DenyReason, detail: str, code: int = EX_DENIED) -> Deny:
        return Deny(identity, reason, detail, code)

    if identity.mismatch is not None:
        return deny("identity_mismatch", identity.mismatch)
    grants = matching_grants(connection, identity, policy, now)

    match request:
        case rq.Malformed(reason=why):
            return deny("malformed_request", why, EX_USAGE)
        case rq.Unknown():
            return deny("unknown_command", "not a gatekeeper command")
        case rq.Help():
            return Inform(identity, "help", json=False, entitlements=())
        case rq.Whoami(json=as_json):
            return Inform(identity, "whoami", json=as_json, entitlements=())
        case rq.ListTargets(json=as_json):
            return Inform(identity, "list", json=as_json, entitlements=entitlements(grants))
        case rq.Attach(session=name) | rq.Watch(session=name):
            grant = _best_session_grant(grants, name)
            if grant is None:
                return deny("no_matching_grant", f"no grant for session {name}")
            mode = READ_ONLY if isinstance(request, rq.Watch) else grant.mode
            return AttachSession(identity, grant, name, mode)
        case rq.Run(program=name):
            for grant in grants:
                if grant.program == name:
                    return RunProgram(identity, grant, name)
            return deny("no_matching_grant", f"no grant for program {name}")
        case rq.Default():
            defaults = [g for g in grants if g.default]
            if defaults:
                return _allow_grant(identity, defaults[0])
            if len(grants) == 1:
                return _allow_grant(identity, grants[0])
            return Inform(identity, "list", json=False, entitlements=entitlements(grants))
        case _:
            assert_never(request)


def decide(
    connection: Connection,
    request: rq.Request,
    policy: Policy,
    now: datetime,
    *,
    require_tty: bool = True,
) -> Decision:
    """Decide one request. Total: an unexpected error is a denial, not an exception."""
    try:
        decision = _decide(connection, request, policy, now)
    except Exception as error:  # noqa: BLE001 - totality: fail closed on any bug
        return Deny(
            Identity(connection.user, None, None),
            "internal_error",
            f"internal error: {type(error).__name__}",
            EX_SOFTWARE,
        )
    if require_tty and isinstance(decision, NEEDS_TTY_TYPES) and not connection.has_tty:
        return Deny(decision.identity, "needs_tty", "attach/run without a terminal", EX_USAGE)
    return decision
