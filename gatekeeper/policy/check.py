"""``gatekeeperctl check``: validate a policy like ``visudo -c`` / ``sshd -t``.

Errors (exit 1) are what would make the gatekeeper deny everything: schema,
references, unsafe file modes. Warnings (exit 0) are grants that work but are
dangerous or probably not what the admin meant: read-write is a shell as the
owner (SECURITY.md §16), a program that can spawn a shell, two people on one
account with different modes (SSH_USER_AUTH is guest-writable, §12), socket
directories a group member could squat (§20).
"""

from __future__ import annotations

import argparse
import os
import pwd
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from gatekeeper.cli.common import add_policy_option, policy_path, print_json
from gatekeeper.deploy import guestset
from gatekeeper.policy import cache as policycache
from gatekeeper.policy import keyindex
from gatekeeper.policy.loader import PolicyError, Problem, load, parse
from gatekeeper.policy.model import AUTHORIZED_KEYS_COMMAND, READ_WRITE, Policy

#: argv[0] basenames that can start a shell unless restricted, and how to restrict them.
_SHELL_CAPABLE: Final = {
    "vim": "-Z",
    "vi": "-Z",
    "vim.basic": "-Z",
    "vim.tiny": "-Z",
    "nvim": "-Z",
    "view": "-Z",
    "rvim": "",
    "nano": "-R",
    "rnano": "",
}
_ALWAYS_DANGEROUS: Final = frozenset(
    {
        "sh", "bash", "dash", "zsh", "ksh", "fish", "csh", "tcsh", "env", "emacs", "python",
        "python3", "perl", "ruby", "node", "lua", "tclsh", "awk", "gawk", "man", "more",
        "find", "git", "ssh", "scp", "rsync", "sftp", "tmux", "screen",
    }
)  # fmt: skip


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


def _program_warnings(policy: Policy) -> list[Problem]:
    found: list[Problem] = []
    for name, program in policy.programs.items():
        where = f"programs.{name}.argv"
        base = os.path.basename(program.argv[0])
        flag = _SHELL_CAPABLE.get(base)
        if flag:
            if flag not in program.argv[1:]:
                found.append(
                    Problem(where, f"{base} without {flag} can start a shell as the guest")
                )
            elif base.startswith(("vi", "nvim")) and "--" not in program.argv:
                found.append(Problem(where, f"{base}: put '--' before file names"))
        elif base in _ALWAYS_DANGEROUS or base.startswith("python"):
            found.append(Problem(where, f"{base} can run arbitrary commands as the guest"))
        if not os.access(program.argv[0], os.X_OK):
            found.append(Problem(where, f"{program.argv[0]} is not an executable file here"))
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


def _run(args: argparse.Namespace) -> int:
    report = check(policy_path(args), cache_dir=None if args.no_cache else args.cache_dir)
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
        default=policycache.DEFAULT_DIR,
        help="where root stores the validated policy for the gatekeeper "
        f"(default: {policycache.DEFAULT_DIR}; other values are for tests)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="do not write the validated-policy cache"
    )
    parser.set_defaults(handler=_run)
