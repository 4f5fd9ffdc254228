"""``gatekeeperctl check``: validate a policy like ``visudo -c`` / ``sshd -t``.

Errors (exit 1) are what would make the gatekeeper deny: schema, references,
unsafe file modes, and (:func:`containment_errors`) an uncontained program an
account that can attach may run, or one that can spawn commands. Warnings
(exit 0) are grants that work but are dangerous or probably not what the admin
meant: read-write is a shell as the owner (SECURITY.md §16), a program
gatekeeper does not know, two people on one account with different modes
(SSH_USER_AUTH is guest-writable, §12), socket directories a group member
could squat (§20).
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from gatekeeper.cli.common import add_policy_option, policy_path, print_json
from gatekeeper.deploy import guestset
from gatekeeper.policy import cache as policycache
from gatekeeper.policy import keyindex
from gatekeeper.policy import programs as programrules
from gatekeeper.policy.loader import PolicyError, Problem, load, parse
from gatekeeper.policy.model import (
    AUTHORIZED_KEYS_COMMAND,
    DEFAULT_PATH,
    READ_WRITE,
    Grant,
    Policy,
)


@dataclass
class Report:
    """The outcome of a check."""

    file: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors


def _members(group: str) -> frozenset[str] | None:
    """Accounts in ``group`` per the user database now (supplementary and primary)."""
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return None
    primary = {p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid}
    return frozenset(entry.gr_mem) | primary


def _user_groups(user: str) -> frozenset[str] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    with contextlib.suppress(KeyError):
        names.add(grp.getgrgid(entry.pw_gid).gr_name)
    return frozenset(names)


def overlap_reason(attach: Grant, run: Grant) -> str | None:
    """Why one account may use both grants (conservative: unsure counts as yes)."""
    if attach.people or run.people:
        return "a person's key may be on any account, and tmux access belongs to the account"
    if shared := attach.users & run.users:
        return f"both name user {min(shared)!r}"
    if shared := attach.groups & run.groups:
        return f"both name group {min(shared)!r}"
    for users, groups in ((run.users, attach.groups), (attach.users, run.groups)):
        for user in sorted(users):
            if not groups:
                break
            member_of = _user_groups(user)
            if member_of is None:
                return f"user {user!r} does not exist yet and may join group {min(groups)!r}"
            if shared := member_of & groups:
                return f"user {user!r} is in group {min(shared)!r}"
    return _groups_overlap(attach.groups, run.groups)


def _groups_overlap(attach: frozenset[str], run: frozenset[str]) -> str | None:
    """Why a member of one of ``attach`` may also be in one of ``run`` (unsure: yes)."""
    for first in sorted(attach):
        for second in sorted(run):
            one, two = _members(first), _members(second)
            if one is None or two is None:
                missing = first if one is None else second
                return f"group {missing!r} does not exist here"
            if shared := one & two:
                return f"user {min(shared)!r} is in groups {first!r} and {second!r}"
    return None


def containment_errors(policy: Policy) -> list[Problem]:
    """Uncontained programs an attaching account could run, and programs that spawn."""
    found: list[Problem] = []
    for grant in policy.grants:
        if grant.program is None or policy.programs[grant.program].sandbox:
            continue
        for attach in policy.grants:
            if attach.session is None:
                continue
            why = overlap_reason(attach, grant)
            if why is not None:
                found.append(
                    Problem(
                        grant.label,
                        f"program {grant.program!r} is not contained, but {attach.label} "
                        f"lets the same account attach to session {attach.session!r} "
                        f"({why}): a process the guest controls can drive the session "
                        "through tmux control mode as its owner, read-only or not; "
                        f"{programrules.fix_text(grant.program)}",
                    )
                )
                break
    for name, program in policy.programs.items():
        if program.sandbox:
            continue
        real = programrules.real_path(program.argv[0])
        why = programrules.spawning_reason(real, program.argv)
        if why:
            shown = program.argv[0] if real == program.argv[0] else f"{program.argv[0]} ({real})"
            found.append(
                Problem(
                    f"programs.{name}.argv",
                    f"{shown} can run commands as the guest ({why}); "
                    f"set programs.{name}.sandbox = true",
                )
            )
    return found


def _program_warnings(policy: Policy) -> list[Problem]:
    found: list[Problem] = []
    for name, program in policy.programs.items():
        where = f"programs.{name}.argv"
        real = programrules.real_path(program.argv[0])
        if not program.sandbox and programrules.spawning_reason(real, program.argv) == "":
            found.append(
                Problem(
                    where,
                    f"{os.path.basename(real)} is not a program gatekeeper knows: make sure it "
                    "cannot start a shell or open files, or set "
                    f"programs.{name}.sandbox = true",
                )
            )
        if not os.access(program.argv[0], os.X_OK):
            found.append(Problem(where, f"{program.argv[0]} is not an executable file here"))
        found.extend(
            Problem(f"programs.{name}.write", f"{path} does not exist (nothing is writable there)")
            for path in program.write
            if not os.path.exists(path)
        )
    return found


def _grant_warnings(policy: Policy, now: datetime) -> list[Problem]:
    found: list[Problem] = []
    people_modes: dict[str, dict[str, set[str]]] = {}
    for grant in policy.grants:
        if grant.session is not None and grant.mode == READ_WRITE:
            owner = policy.sessions[grant.session].owner
            found.append(
                Problem(
                    grant.label,
                    f"read-write on {grant.session!r} gives a shell as {owner!r} "
                    "(tmux runs run-shell, new-window, send-keys as the server owner)",
                )
            )
        if grant.expires is not None and grant.expires <= now:
            found.append(Problem(grant.label, "expired: it no longer allows anything"))
        if grant.session is not None:
            for person in grant.people:
                people_modes.setdefault(grant.session, {}).setdefault(grant.mode, set()).add(person)
    vouched = policy.identity_source == AUTHORIZED_KEYS_COMMAND
    for session, modes in sorted(people_modes.items()):
        if len(modes) > 1 and vouched:
            names = sorted(set().union(*modes.values()))
            found.append(
                Problem(
                    f"sessions.{session}",
                    f"people {', '.join(names)} get different modes: sshd names the person "
                    "and the gatekeeper gives each their own mode, but tmux's server-access "
                    "is per account, so a shared account holds the most permissive one: any "
                    "code run as that account (an allowed program, SECURITY.md §27) has it",
                )
            )
        elif len(modes) > 1:
            names = sorted(set().union(*modes.values()))
            found.append(
                Problem(
                    f"sessions.{session}",
                    f"people {', '.join(names)} get different modes, but the person comes "
                    "from SSH_USER_AUTH, which a shared guest account can rewrite: set "
                    '[identity] source = "authorized-keys-command" (sshd names the person) '
                    "or give each guest their own account",
                )
            )
    defaults = [g for g in policy.grants if g.default]
    for i, first in enumerate(defaults):
        for second in defaults[i + 1 :]:
            overlap = (first.users & second.users) or (first.groups & second.groups)
            overlap = overlap or (first.people & second.people)
            if overlap:
                found.append(
                    Problem(
                        second.label,
                        f"a second default for {', '.join(sorted(overlap))}: "
                        f"{first.label} wins (first in the file)",
                    )
                )
    return found


def _session_warnings(policy: Policy) -> list[Problem]:
    found: list[Problem] = []
    for name, session in policy.sessions.items():
        where = f"sessions.{name}"
        try:
            owner = pwd.getpwnam(session.owner)
        except KeyError:
            found.append(Problem(f"{where}.owner", f"no such account {session.owner!r}"))
            continue
        directory = os.path.dirname(session.socket)
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            found.append(Problem(f"{where}.socket", _missing_dir(directory, owner)))
            continue
        except OSError as error:
            found.append(Problem(f"{where}.socket", f"{directory}: {error.strerror}"))
            continue
        if st.st_uid not in (owner.pw_uid, 0):
            found.append(
                Problem(f"{where}.socket", f"{directory} is not owned by {session.owner} or root")
            )
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and not st.st_mode & stat.S_ISVTX:
            found.append(
                Problem(
                    f"{where}.socket",
                    f"{directory} is group/world-writable and not sticky: a member can replace "
                    "the socket (use 0750, or 1770)",
                )
            )
    return found


def _missing_dir(directory: str, owner: pwd.struct_passwd) -> str:
    """What to do about a socket directory that does not exist: who can really create it."""
    parent = os.path.dirname(directory)
    try:
        st = os.stat(parent)
    except OSError:
        st = None
    if st is not None and st.st_uid == owner.pw_uid and st.st_mode & stat.S_IWUSR:
        return (
            f"{directory} does not exist yet (`gatekeeperctl share` as {owner.pw_name} creates it)"
        )
    return (
        f"{directory} does not exist yet and {owner.pw_name} cannot create it in {parent}: "
        f"as root, `install -d -o {owner.pw_name} -m 2750 {directory}` (add -g GROUP for the "
        "socket's group) and a tmpfiles.d line to keep it across reboots (docs/hosting.md)"
    )


def _guest_errors(policy: Policy) -> list[Problem]:
    """A grant that reaches a session owner or any non-guest account is an error (§30)."""
    found = guestset.classify(policy)
    return [Problem(item.where, guestset.refusal_text(item)) for item in found.refused]


def check(path: str, now: datetime | None = None, cache_dir: str | None = None) -> Report:
    """Check one policy file; with ``cache_dir``, refresh the validated-policy cache there.

    The cache (:mod:`gatekeeper.policy.cache`) is written only for a policy that
    passed, and only by root; it is what keeps pydantic off the login path.
    """
    report = Report(file=path)
    try:
        policy = load(path)
    except PolicyError as error:
        if error.kind == "unsafe":
            # Still validate the content, so the admin sees every problem at once.
            report.errors.extend(error.problems)
            try:
                with open(path, "rb") as handle:
                    parse(handle.read(), path)
            except PolicyError as inner:
                report.errors.extend(inner.problems)
            except OSError:
                pass
        else:
            report.errors.extend(error.problems)
        return report
    report.errors += containment_errors(policy)
    report.errors += _guest_errors(policy)
    if report.errors:
        return report
    if cache_dir is not None:
        policycache.store(policy, cache_dir)
        keyindex.store(policy, cache_dir)  # what gatekeeper-authorized-keys reads
    moment = now or datetime.now(UTC)
    report.warnings += _program_warnings(policy)
    report.warnings += _grant_warnings(policy, moment)
    report.warnings += _session_warnings(policy)
    report.summary = {
        "sessions": len(policy.sessions),
        "programs": len(policy.programs),
        "grants": len(policy.grants),
        "people": len(policy.people),
    }
    return report


def _print(report: Report) -> None:
    for problem in report.errors:
        where = f"{problem.path}: " if problem.path else ""
        print(f"{report.file}: error: {where}{problem.message}")
    for problem in report.warnings:
        where = f"{problem.path}: " if problem.path else ""
        print(f"{report.file}: warning: {where}{problem.message}")
    if report.ok:
        s = report.summary
        print(
            f"{report.file}: OK: {s['sessions']} sessions, {s['programs']} programs, "
            f"{s['grants']} grants, {s['people']} people, {len(report.warnings)} warnings"
        )
        if not s["grants"]:
            print(f"{report.file}: note: no grants: every request is denied")


def _cache_dir(args: argparse.Namespace, path: str) -> str | None:
    """Where this check may refresh the validated-policy cache, if anywhere.

    Only for a policy in use: the default one, one the cache already holds
    (a non-default policy named by sshd's ``ForceCommand``, cached before), or
    with an explicit ``--cache-dir``. Checking a candidate file -
    ``validate: 'gatekeeperctl check %s'`` in Ansible, like ``visudo -cf`` -
    leaves the cache directory exactly as it was.
    """
    if args.no_cache:
        return None
    if args.cache_dir is not None:
        return str(args.cache_dir)
    default = policycache.DEFAULT_DIR
    if os.path.realpath(path) == os.path.realpath(DEFAULT_PATH):
        return default
    return default if os.path.exists(policycache.cache_file(path, default)) else None


def _run(args: argparse.Namespace) -> int:
    path = policy_path(args)
    report = check(path, cache_dir=_cache_dir(args, path))
    if args.json:
        data: dict[str, Any] = asdict(report)
        data["ok"] = report.ok
        print_json(data)
    else:
        _print(report)
    return 0 if report.ok else 1


def register(subparsers: Any) -> None:
    """Add ``check``."""
    parser = subparsers.add_parser(
        "check", help="validate a policy file (schema, references, modes, warnings)"
    )
    parser.add_argument("path", nargs="?", help="policy file (same as --policy)")
    add_policy_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="store the validated policy for the gatekeeper here (root only). Without it: "
        f"{policycache.DEFAULT_DIR}, and only for {DEFAULT_PATH} or a policy already "
        "cached there; any other file leaves the cache alone, so check serves as a "
        "config-management validator (Ansible validate; exit 0 valid, 1 not)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="do not write the validated-policy cache"
    )
    parser.set_defaults(handler=_run)
