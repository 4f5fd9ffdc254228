"""A validated-policy cache, so that pydantic stays off the per-login path.

Validating ``/etc/gatekeeper.toml`` with pydantic costs more than the rest of
a login (importing pydantic alone is about 160 ms here, docs/performance.md).
The result of that validation - the plain, frozen :class:`model.Policy` - is a
pure function of the policy's bytes and of the validator's code. So root
stores it as JSON beside the SHA-256 of those bytes, and the gatekeeper uses
it instead of validating again when, and only when, all of these hold:

* the policy file itself passed :func:`fsafety.read_trusted` (as always: the
  cache never replaces the file checks) and its bytes hash to the recorded
  SHA-256 - an edited policy is validated in full again;
* the cache file passed the same check: a regular, root-owned file, not
  group/world-writable, in root-owned directories nobody else can write - the
  cache is as trustworthy as the policy file, because only root can write it;
* it records this policy's path, this cache format, this gatekeeper version
  and the fingerprint of the validator's code (:func:`code_fingerprint`), so
  an upgrade that tightens validation never trusts an older verdict;
* it decodes into well-typed values.

Any doubt is a miss, and a miss is silent: the caller validates in full, as
if no cache existed (fail closed means "fall back to the slow, sure path",
never "deny because the cache is odd"). Only a validation that passed is
cached, so an invalid policy is never served from here.

Stdlib only (no pydantic, no structlog) and cheap to import: ``ipaddress`` is
imported only when a grant has ``from`` ranges, ``datetime`` only when a grant
has a time window.

The cache lives in :data:`DEFAULT_DIR` (``/var/cache/ssh-gatekeeper``, root,
0755; files root 0644), one file per policy path. ``gatekeeperctl check``
writes it, and the gatekeeper refreshes it when it runs as root. The
directory can be changed through a function argument (tests, ``gatekeeperctl
check --cache-dir``), never through the environment, which the guest sets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, Final

from gatekeeper import __version__
from gatekeeper.login import fsafety
from gatekeeper.policy import model

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_DIR: Final = "/var/cache/ssh-gatekeeper"
#: Bumped whenever the JSON layout below changes.
FORMAT: Final = 3
#: The modules whose code decides what a validated policy is; their source is hashed.
#: (keys.py takes its key types from login/authkeys.py: hashed too.)
_VALIDATOR_MODULES: Final = (
    "loader.py",
    "model.py",
    "cache.py",
    "programs.py",
    "keys.py",
    "../login/authkeys.py",
)
_MODES: Final = frozenset({model.READ_ONLY, model.READ_WRITE})
_SINKS: Final = frozenset({"journald", "file"})
_ON_FAILURE: Final = frozenset({"deny", "allow"})
_SOURCES: Final = frozenset({model.SSH_USER_AUTH, model.AUTHORIZED_KEYS_COMMAND})
#: A grant is cached as the JSON text of a positional array: a login parses only
#: the grants that name it, so a 10,000-grant policy costs little more than 10.
_GRANT_FIELDS: Final = 10
_SESSION_FIELDS: Final = 7
_RECORD: Final = frozenset({"off", "on", "required"})
_NO_NAMES: Final[frozenset[str]] = frozenset()


class _BadCacheError(Exception):
    """The cache content does not have the expected shape (a miss, never an error)."""


def cache_file(policy_path: str, cache_dir: str = DEFAULT_DIR) -> str:
    """The cache file for a policy path: named by the SHA-256 of its absolute path."""
    key = hashlib.sha256(os.path.abspath(policy_path).encode("utf-8", "surrogateescape"))
    return os.path.join(cache_dir, f"policy-{key.hexdigest()[:32]}.json")


def code_fingerprint() -> str | None:
    """SHA-256 over the validator's source files; ``None`` if one cannot be read.

    ``None`` disables the cache (read and write): without the source there is
    no way to tell whether a cached verdict came from this validator.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0".encode())
    for name in _VALIDATOR_MODULES:
        try:
            with open(os.path.join(here, name), "rb") as handle:
                source = handle.read()
        except OSError:
            return None
        digest.update(name.encode() + b"\0" + hashlib.sha256(source).digest())
    return digest.hexdigest()


# --------------------------------------------------------------------------- encode


def _cidr(network: model.Network) -> str:
    """A network in one spelling every Python reads and writes the same way.

    ``str()`` of an IPv4-mapped IPv6 network differs between Pythons (3.11:
    ``::ffff:a00:0/104``, 3.13: ``::ffff:10.0.0.0/104``); the cache directory is
    shared by whichever Python the launcher runs, so IPv6 is written fully
    expanded from the integer (eight 4-digit groups), IPv4 dotted.
    """
    if network.version == 4:
        return f"{network.network_address}/{network.prefixlen}"
    digits = f"{int(network.network_address):032x}"
    groups = ":".join(digits[i : i + 4] for i in range(0, 32, 4))
    return f"{groups}/{network.prefixlen}"


def _grant_to_json(grant: model.Grant) -> list[Any]:
    """One grant as a positional array (see :data:`_GRANT_FIELDS`); its index is its position."""
    return [
        sorted(grant.users),
        sorted(grant.groups),
        sorted(grant.people),
        [_cidr(network) for network in grant.from_],
        grant.session,
        grant.program,
        grant.mode,
        grant.default,
        grant.not_before.isoformat() if grant.not_before else None,
        grant.expires.isoformat() if grant.expires else None,
    ]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def encode(policy: model.Policy, fingerprint: str) -> bytes:
    """The cache document for a validated policy (ASCII JSON)."""
    audit = policy.audit
    document = {
        "format": FORMAT,
        "code": fingerprint,
        "path": os.path.abspath(policy.path),
        "sha256": policy.sha256,
        "policy": {
            "audit": {
                "sink": audit.sink,
                "identifier": audit.identifier,
                "journal_socket": audit.journal_socket,
                "file": audit.file,
                "on_failure": audit.on_failure,
            },
            "tmux_binary": policy.tmux_binary,
            "identity_source": policy.identity_source,
            "people": {name: sorted(keys) for name, keys in policy.people.items()},
            "sessions": {
                name: [
                    s.socket,
                    s.owner,
                    s.target,
                    s.record,
                    s.recordings,
                    s.record_limit,
                    s.announce,
                ]
                for name, s in policy.sessions.items()
            },
            "programs": {name: _program_to_json(p) for name, p in policy.programs.items()},
            "grants": [_dumps(_grant_to_json(grant)) for grant in policy.grants],
        },
    }
    return _dumps(document).encode("ascii")


# --------------------------------------------------------------------------- decode


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _BadCacheError("expected a string")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _BadCacheError("expected a list")
    return value


def _strs(value: Any) -> list[str]:
    return [_str(item) for item in _list(value)]


def _program_to_json(program: model.Program) -> dict[str, Any]:
    """A program with the pin of the file its argv[0] resolves to right now.

    The pin is taken when the cache is written (``gatekeeperctl check``): at login
    a different target denies with ``program_changed`` until check runs again.
    """
    from gatekeeper.policy.programs import pin_of  # noqa: PLC0415 - only when storing

    pin = pin_of(program.argv[0])
    return {
        "argv": list(program.argv),
        "sandbox": program.sandbox,
        "write": list(program.write),
        "pin": None if pin is None else list(pin),
    }


def _program(name: str, value: Any) -> model.Program:
    body = _dict(value)
    argv = tuple(_strs(body["argv"]))
    if not argv or type(body["sandbox"]) is not bool:
        raise _BadCacheError("bad program")
    raw_pin = body["pin"]
    pin: tuple[str, int, int, int, int] | None = None
    if raw_pin is not None:
        items = _list(raw_pin)
        if len(items) != 5 or any(type(n) is not int for n in items[1:]):
            raise _BadCacheError("bad pin")
        pin = (_str(items[0]), items[1], items[2], items[3], items[4])
    return model.Program(name, argv, body["sandbox"], tuple(_strs(body["write"])), pin)


def _dict(value: Any) -> Mapping[str, Any]:
    if type(value) is not dict:
        raise _BadCacheError("expected an object")
    return value


def _choice(value: Any, allowed: frozenset[str]) -> Any:
    if value not in allowed:
        raise _BadCacheError("unexpected value")
    return value


def _time(value: Any) -> Any:
    if value is None:
        return None
    from datetime import datetime  # noqa: PLC0415 - only grants with a time window need it

    moment = datetime.fromisoformat(_str(value))
    if moment.utcoffset() is None:
        raise _BadCacheError("naive datetime")
    return moment


def _networks(value: Any) -> tuple[model.Network, ...]:
    ranges = _strs(value)
    if not ranges:
        return ()
    import ipaddress  # noqa: PLC0415 - only grants with `from` need it

    return tuple(ipaddress.ip_network(cidr, strict=True) for cidr in ranges)


def _names(value: Any) -> frozenset[str]:
    if type(value) is not list:
        raise _BadCacheError("expected a list")
    if not value:
        return _NO_NAMES
    for item in value:
        if type(item) is not str:
            raise _BadCacheError("expected strings")
    return frozenset(value)


def _grant(position: int, value: Any) -> model.Grant:
    # Inlined checks: this runs once per grant on every login.
    if type(value) is not list or len(value) != _GRANT_FIELDS:
        raise _BadCacheError("bad grant")
    users, groups, people, ranges, session, program, mode, default, not_before, expires = value
    if mode not in _MODES or type(default) is not bool:
        raise _BadCacheError("bad grant")
    if (session is None) == (program is None):
        raise _BadCacheError("a grant names exactly one target")
    return model.Grant(
        position,
        _names(users),
        _names(groups),
        _names(people),
        () if ranges == [] else _networks(ranges),
        _opt_str(session),
        _opt_str(program),
        mode,
        default,
        None if not_before is None else _time(not_before),
        None if expires is None else _time(expires),
    )


def _could_match(text: Any, needles: tuple[str, ...]) -> bool:
    """Whether a cached grant's JSON text could name this connection (a cheap prefilter).

    ``needles`` are the account, its groups and its people, each encoded exactly
    as :func:`encode` encodes names (``json.dumps``, ASCII), so a grant that
    names one of them contains it verbatim: no false negative. A false positive
    (the name appears in another field) only costs a full decode, after which
    decide applies its own identity test.
    """
    if type(text) is not str:
        raise _BadCacheError("bad grant")
    return any(needle in text for needle in needles)


def decode(
    data: bytes,
    policy_path: str,
    sha256: str,
    fingerprint: str,
    relevant_to: model.Connection | None = None,
) -> model.Policy:
    """The policy in a cache document made for these bytes and this code; raise if not.

    With ``relevant_to``, ``grants`` holds only the grants that name that
    connection's account, one of its groups, or a person one of its keys
    belongs to - each with its original ``index`` (each grant is stored as its
    own JSON text, so the others are not even parsed). :func:`gatekeeper.login.decide.decide`
    considers only grants that pass its identity test (``matching_grants``), so
    its decision is the same as with every grant (a property test holds it to
    that), and a 10,000-grant policy does not build 10,000 grants per login.
    Everything else (people, sessions, programs, audit) is complete.
    """
    document = _dict(json.loads(data))
    if (
        document.get("format") != FORMAT
        or document.get("code") != fingerprint
        or document.get("path") != os.path.abspath(policy_path)
        or document.get("sha256") != sha256
    ):
        raise _BadCacheError("made for another policy, policy version or validator")
    body = _dict(document["policy"])
    audit = _dict(body["audit"])
    sessions: dict[str, model.Session] = {}
    for name, value in _dict(body["sessions"]).items():
        fields = _list(value)
        if len(fields) != _SESSION_FIELDS:
            raise _BadCacheError("bad session")
        socket, owner, target, record, recordings = _strs(fields[:5])
        limit, announce = fields[5], fields[6]
        if type(limit) is not int or type(announce) is not bool:
            raise _BadCacheError("bad session")
        sessions[name] = model.Session(
            name,
            socket,
            owner,
            target,
            record=_choice(record, _RECORD),
            recordings=recordings,
            record_limit=limit,
            announce=announce,
        )
    programs = {name: _program(name, value) for name, value in _dict(body["programs"]).items()}
    people = {name: frozenset(_strs(keys)) for name, keys in _dict(body["people"]).items()}
    raw_grants = _list(body["grants"])
    if relevant_to is None:
        grants = tuple(_grant(i, json.loads(_str(g))) for i, g in enumerate(raw_grants))
    else:
        presented = frozenset(relevant_to.key_fingerprints)
        names = {relevant_to.user, *relevant_to.groups}
        names.update(name for name, keys in people.items() if not keys.isdisjoint(presented))
        if relevant_to.sshd_person is not None:
            names.add(relevant_to.sshd_person)
        needles = tuple(_dumps(name) for name in sorted(names))
        grants = tuple(
            _grant(i, json.loads(g)) for i, g in enumerate(raw_grants) if _could_match(g, needles)
        )
    return model.Policy(
        audit=model.AuditConfig(
            sink=_choice(audit["sink"], _SINKS),
            identifier=_str(audit["identifier"]),
            journal_socket=_str(audit["journal_socket"]),
            file=_str(audit["file"]),
            on_failure=_choice(audit["on_failure"], _ON_FAILURE),
        ),
        tmux_binary=_str(body["tmux_binary"]),
        identity_source=_choice(body["identity_source"], _SOURCES),
        people=people,
        sessions=sessions,
        programs=programs,
        grants=grants,
        sha256=sha256,
        path=policy_path,
    )


# --------------------------------------------------------------------------- use


def lookup(
    policy_path: str,
    cache_dir: str = DEFAULT_DIR,
    *,
    relevant_to: model.Connection | None = None,
) -> model.Policy | None:
    """The cached policy for ``policy_path``, or ``None`` on any doubt (silently).

    The policy file is read with :func:`fsafety.read_trusted` exactly as a full
    load would; a missing, unreadable or unsafe policy is a miss here, so the
    caller's full load reports it with its usual error. ``relevant_to``: see
    :func:`decode` (the connection path passes its connection).
    """
    try:
        raw = fsafety.read_trusted(policy_path)
    except Exception:  # noqa: BLE001 - any doubt is a miss: the caller validates in full
        return None
    sha256 = hashlib.sha256(raw).hexdigest()
    return lookup_bytes(policy_path, sha256, cache_dir, relevant_to=relevant_to)


def lookup_bytes(
    policy_path: str,
    sha256: str,
    cache_dir: str = DEFAULT_DIR,
    *,
    relevant_to: model.Connection | None = None,
) -> model.Policy | None:
    """Like :func:`lookup`, for a policy file the caller has read (through ``read_trusted``).

    ``sha256`` is the hex SHA-256 of the bytes read: the login path reads and
    hashes the policy once, and validates those same bytes on a miss.
    """
    fingerprint = code_fingerprint()
    if fingerprint is None:
        return None
    try:
        # Stricter than read_trusted for the cache's own directory: not even sticky.
        directory = os.stat(cache_dir)
        if directory.st_uid != 0 or directory.st_mode & 0o022:
            return None
        data = fsafety.read_trusted(cache_file(policy_path, cache_dir))
        return decode(data, policy_path, sha256, fingerprint, relevant_to)
    except Exception:  # noqa: BLE001 - any doubt is a miss: the caller validates in full
        return None


def store(policy: model.Policy, cache_dir: str = DEFAULT_DIR) -> bool:
    """Write the cache for a policy that passed full validation; ``False`` if not written.

    Only root writes (the gatekeeper trusts only root-owned caches anyway). The
    directory is created root 0755 if missing; an existing one that is not
    root-owned or is writable by others is left alone. The file is written
    beside its final name and renamed into place, so readers see the old or
    the new document, never half of one.
    """
    if os.geteuid() != 0 or not policy.path or not policy.sha256:
        return False
    fingerprint = code_fingerprint()
    if fingerprint is None:
        return False
    return write_root_file(
        cache_dir, cache_file(policy.path, cache_dir), encode(policy, fingerprint)
    )


def write_root_file(cache_dir: str, target: str, data: bytes) -> bool:
    """Write ``data`` to ``target`` in ``cache_dir`` (root 0755), root 0644, atomically.

    The directory is created if missing; an existing one that is not root-owned
    or is writable by others is left alone (``False``). Written beside the final
    name and renamed into place: readers see the old or the new file, never half.
    """
    temporary = f"{target}.{os.getpid()}.tmp"
    try:
        os.makedirs(cache_dir, mode=0o755, exist_ok=True)
        st = os.lstat(cache_dir)
        if st.st_uid != 0 or st.st_mode & 0o022 or not os.path.isdir(cache_dir):
            return False
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o644)
        try:
            os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    return True
