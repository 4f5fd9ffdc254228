"""Which accounts are guests: the one answer ``check``, ``sshd-config`` and ``doctor`` share.

SECURITY.md §30: the seed how-to puts the host and ``pair`` in one group, and
a grant or a ``Match Group`` for that group hands the host's own logins to the
gatekeeper (and ``doctor`` then advised turning the host's account into a
guest's). The rule here, written down in docs/identity.md:

A **guest account** is an account a grant reaches - named in a grant's
``users``, or a member (supplementary or primary) of a grant's ``groups`` -
that is

* not root (uid 0) and not the ``owner`` of any session in the policy, and
* if it exists, *guest-shaped*: its login shell is dash (``sh -c`` reads no
  user file, §1.3) and its home is owned by root and not writable by it
  (§1.4-1.5) - what ``gatekeeperctl guest add`` creates.

Anything else a grant reaches is a **non-guest** and is an error: ``check``
fails, ``sshd-config`` refuses to print a Match block, ``doctor`` reports it
without proposing any change to that account. An account named in ``users``
that does not exist yet is a guest-to-be (``guest add`` creates it); sshd's
``Match User`` naming it is harmless until then.

The generated Match block names guests by user name only (never ``Match
Group``): a group's membership can change after the block was generated, and
a new member - the host, say - must not be captured silently.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass, field
from typing import Final

from gatekeeper.policy.model import Policy

#: ``sh -c`` implementations that read no file the user controls (§1.3).
QUIET_SHELLS: Final = frozenset({"dash"})


@dataclass(frozen=True)
class NotGuest:
    """An account a grant reaches that must never get the ForceCommand."""

    name: str
    where: str  # the grant label or the policy path that reaches it
    why: str
    #: Named in a grant's ``users`` and neither root nor an owner: meant as a guest,
    #: so ``doctor`` may still say how to make it one.
    misshapen_guest: bool = False


@dataclass
class GuestSet:
    """The policy's guests (Match order) and the non-guests its grants would catch."""

    guests: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # named in users, no such account yet
    refused: list[NotGuest] = field(default_factory=list)
    missing_groups: list[str] = field(default_factory=list)


def session_owners(policy: Policy) -> set[str]:
    """Every session owner: the host's account is never a guest."""
    return {session.owner for session in policy.sessions.values()}


def shape_problem(entry: pwd.struct_passwd) -> str | None:
    """Why an existing account is not guest-shaped (login shell, home), or None."""
    shell = entry.pw_shell
    real = os.path.realpath(shell) if shell else ""
    if os.path.basename(real) not in QUIET_SHELLS:
        return f"its login shell is {shell or '(empty)'}, not /bin/sh (dash)"
    try:
        st = os.stat(entry.pw_dir)
    except OSError:
        return f"its home {entry.pw_dir} does not exist"
    if st.st_uid != 0:
        return f"its home {entry.pw_dir} is not root's"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"its home {entry.pw_dir} is writable by group or others"
    return None


def group_members(name: str) -> list[str] | None:
    """Supplementary and primary members of a group, sorted; None when it does not exist."""
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return None
    members = set(entry.gr_mem)
    members |= {p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid}
    return sorted(members)


def classify(policy: Policy) -> GuestSet:
    """Every account the grants reach, split into guests and non-guests (see module doc)."""
    owners = session_owners(policy)
    out = GuestSet()
    seen: set[str] = set()

    def consider(name: str, where: str, *, named: bool) -> None:
        if name in seen:
            return
        seen.add(name)
        if name in owners:
            out.refused.append(NotGuest(name, where, "it owns a session (the host)"))
            return
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if named:
                out.missing.append(name)
                out.guests.append(name)
            return
        if entry.pw_uid == 0:
            out.refused.append(NotGuest(name, where, "it is root"))
            return
        problem = shape_problem(entry)
        if problem is not None:
            why = f"it is not a guest account: {problem}"
            out.refused.append(NotGuest(name, where, why, misshapen_guest=named))
            return
        out.guests.append(name)

    for grant in policy.grants:
        for user in sorted(grant.users):
            consider(user, f"{grant.label}.users", named=True)
        for group in sorted(grant.groups):
            members = group_members(group)
            if members is None:
                if group not in out.missing_groups:
                    out.missing_groups.append(group)
                continue
            for member in members:
                consider(member, f"{grant.label}.groups ({group})", named=False)
    return out


def refusal_text(item: NotGuest) -> str:
    """One line for ``check``/``sshd-config``/``doctor``: who, why, and the safe way out."""
    return (
        f"{item.name} would get the gatekeeper's ForceCommand, but {item.why}: "
        "name guest accounts in users (gatekeeperctl guest add NAME), or remove "
        f"{item.name} from the group; never change the host's own account"
    )
