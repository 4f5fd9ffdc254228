"""Property: no policy that ``check`` accepts lets an attaching account run an uncontained program.

Policies are drawn over real accounts and groups of this machine (root, daemon,
nobody; groups root, daemon, nogroup...), names that do not exist, and people.
For every account that exists, with its groups from the user database as a
login would see them, and for every account that does not exist yet with any
set of groups it might be given later: if ``check`` reports no error, then no
uncontained program grant for that account coexists with a session grant it
could use.
"""

from __future__ import annotations

import grp
import pwd
from itertools import chain, combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.policy import check
from gatekeeper.policy.model import Grant, Policy, Program, Session

USERS = ("root", "daemon", "nobody", "gk-nosuch-a", "gk-nosuch-b")
GROUPS = ("root", "daemon", "nogroup", "gk-nosuch-g")
PEOPLE = ("bob", "carol")


def db_groups(user: str) -> frozenset[str] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    names.add(grp.getgrgid(entry.pw_gid).gr_name)
    return frozenset(names)


def subsets(items: tuple[str, ...]) -> list[frozenset[str]]:
    return [
        frozenset(c)
        for c in chain.from_iterable(combinations(items, n) for n in range(len(items) + 1))
    ]


names = st.frozensets
grant_shape = st.tuples(
    names(st.sampled_from(USERS), max_size=2),
    names(st.sampled_from(GROUPS), max_size=2),
    names(st.sampled_from(PEOPLE), max_size=1),
    st.sampled_from(["session", "p", "q"]),
).filter(lambda g: bool(g[0] or g[1] or g[2]))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(grant_shape, min_size=1, max_size=5),
    st.booleans(),
    st.booleans(),
)
def test_check_never_accepts_an_attaching_account_with_an_uncontained_program(
    shapes: list[tuple[frozenset[str], frozenset[str], frozenset[str], str]],
    p_contained: bool,
    q_contained: bool,
) -> None:
    grants = tuple(
        Grant(
            i,
            users=users,
            groups=groups,
            people=people,
            session="s" if target == "session" else None,
            program=None if target == "session" else target,
        )
        for i, (users, groups, people, target) in enumerate(shapes)
    )
    argv = ("/usr/bin/less", "--", "/etc/hostname")  # known-good: only rule 1 can object
    policy = Policy(
        sessions={"s": Session("s", "/run/s.sock", "root", "s")},
        programs={"p": Program("p", argv, p_contained), "q": Program("q", argv, q_contained)},
        grants=grants,
    )
    if check.containment_errors(policy):
        return
    for user in USERS:
        known = db_groups(user)
        for groups in [known] if known is not None else subsets(GROUPS):
            for person in (None, *PEOPLE):

                def matches(
                    g: Grant,
                    user: str = user,
                    groups: frozenset[str] = groups,
                    person: str | None = person,
                ) -> bool:
                    return user in g.users or bool(g.groups & groups) or person in g.people

                attach = [g for g in grants if g.session and matches(g)]
                runs = [
                    g
                    for g in grants
                    if g.program and matches(g) and not policy.programs[g.program].sandbox
                ]
                # Across people too: tmux access belongs to the uid, whichever key was used.
                any_person_attach = [g for g in grants if g.session and g.people]
                assert not (runs and (attach or any_person_attach)), (user, groups, person)
