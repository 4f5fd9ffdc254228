"""sshd's ``AuthorizedKeysCommand``: the policy's keys, nothing else (SECURITY.md §29).

``gatekeeper-authorized-keys [--policy P] USER TYPE KEY [FINGERPRINT]`` (sshd:
``%u %t %k %f``) prints one ``authorized_keys`` line::

    restrict,pty,environment="GATEKEEPER_PERSON=bob",expiry-time="20261231235959Z" TYPE KEY

when ``TYPE KEY`` is a well-formed key whose fingerprint a person of the
policy lists, and that person has a grant for ``USER`` (its account, one of
its groups, or the person itself) that is valid now or later. For anything
else it prints nothing and exits 0: sshd then refuses the key. An error
(bad arguments, an unreadable policy) prints nothing and exits 1.

``expiry-time`` is the latest ``expires`` of those grants, in UTC; it is
left out when one of them never expires. sshd refuses the key after that
moment even if nobody re-runs ``check``. ``pty``: every grant is an attach or
a program, and both need a terminal (the gatekeeper denies without one).

It runs for every key offered at every login, before the gatekeeper, as
``AuthorizedKeysCommandUser``. So it is a separate, tiny entry point (not a
``gatekeeperctl`` subcommand, which imports argparse and every admin tool):
stdlib only, the policy read from the root-written validated-policy cache
(:mod:`gatekeeper.policycache`), never validated here - no pydantic, no
structlog, no tomllib. A missing or stale cache (the policy was edited and
``gatekeeperctl check`` not run yet) denies every key: ``check`` refreshes it,
``doctor`` says so. ``fsafety.read_trusted`` still requires a root-owned,
not-writable policy and cache, exactly as for the gatekeeper.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Final

from gatekeeper import keys, policycache

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gatekeeper import model

DEFAULT_POLICY: Final = "/etc/gatekeeper.toml"
EX_OK: Final = 0
EX_ERROR: Final = 1


def _groups(user: str) -> frozenset[str] | None:
    import grp  # noqa: PLC0415 - C modules, cheap; only for a key the policy knows
    import pwd  # noqa: PLC0415

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names: set[str] = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return frozenset(names)


def _applies(
    grant: model.Grant, user: str, groups: frozenset[str], person: str, source: str
) -> bool:
    """The decision's identity rule (``decide._identity_matches``) for this person."""
    if source == "authorized-keys-command" and grant.people:
        if person not in grant.people:
            return False
        if grant.users or grant.groups:
            return user in grant.users or not grant.groups.isdisjoint(groups)
        return True
    return user in grant.users or not grant.groups.isdisjoint(groups) or person in grant.people


def key_line(
    policy: model.Policy, user: str, key_type: str, key_b64: str, now_epoch: float
) -> str | None:
    """The authorized_keys line for this key on this account, or None (refuse)."""
    blob = keys.blob_of(key_type, key_b64)
    if blob is None:
        return None
    fingerprint = keys.fingerprint_of_blob(blob)
    person = next((name for name, fps in policy.people.items() if fingerprint in fps), None)
    if person is None:
        return None
    groups = _groups(user)
    if groups is None:
        return None
    latest: float | None = 0.0
    found = False
    for grant in policy.grants:
        if not _applies(grant, user, groups, person, policy.identity_source):
            continue
        if grant.session is None and grant.program is None:
            continue
        if grant.expires is not None and grant.expires.timestamp() <= now_epoch:
            continue
        found = True
        if grant.expires is None:
            latest = None
        elif latest is not None:
            latest = max(latest, grant.expires.timestamp())
    if not found:
        return None
    options = f'restrict,pty,environment="GATEKEEPER_PERSON={person}"'
    if latest is not None:
        import time  # noqa: PLC0415 - only for an expiring grant

        options += f',expiry-time="{time.strftime("%Y%m%d%H%M%S", time.gmtime(latest))}Z"'
    return f"{options} {key_type} {key_b64}"


def run(argv: Sequence[str], cache_dir: str = policycache.DEFAULT_DIR) -> tuple[int, str]:
    """(exit code, stdout) for sshd's arguments; pure apart from reading the files."""
    args = list(argv)
    policy_path = DEFAULT_POLICY
    if args[:1] == ["--policy"]:
        if len(args) < 2 or not args[1].startswith("/"):
            return EX_ERROR, ""
        policy_path, args = args[1], args[2:]
    if len(args) not in (3, 4):
        return EX_ERROR, ""
    user, key_type, key_b64 = args[0], args[1], args[2]
    policy = policycache.lookup(policy_path, cache_dir)
    if policy is None:
        # Missing, stale or untrusted cache, or an unsafe policy: deny every key.
        # gatekeeperctl check refreshes the cache; doctor says which it is.
        return EX_OK, ""
    import time  # noqa: PLC0415

    blob = keys.blob_of(key_type, key_b64)
    if blob is None or (len(args) == 4 and args[3] != keys.fingerprint_of_blob(blob)):
        return EX_OK, ""  # not a key, or sshd's %f does not match its %k: refuse
    line = key_line(policy, user, key_type, key_b64, time.time())
    return EX_OK, "" if line is None else line + "\n"


def main() -> None:
    """Entry point of the ``gatekeeper-authorized-keys`` launcher."""
    try:
        code, text = run(sys.argv[1:])
    except Exception:  # noqa: BLE001 - any error: print nothing, sshd refuses the key
        code, text = EX_ERROR, ""
    if text:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError:
            code = EX_ERROR
    os._exit(code)  # no atexit, no interpreter teardown: sshd waits for us
