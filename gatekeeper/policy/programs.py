"""Which allowed programs may run uncontained, and for whom (stdlib only, login path).

Two rules, the same in ``gatekeeperctl check`` (errors) and at login (exit 78):

1. An account that can attach to a session must never run an uncontained
   program: any process of the guest's own choosing, as a uid with tmux
   ``server-access``, can speak control mode to the server, and control mode
   ignores read-only - ``run-shell`` runs as the host (docs/threat-model.md,
   "Allowed programs").
2. A program that embeds an interpreter, or an editor/pager with filter or
   shell commands, runs only contained, for every guest account - judged by
   the *real* path of ``argv[0]`` (symlinks and Debian alternatives resolved:
   installing vim-nox repoints ``/usr/bin/vim`` at a build with ``:perl``).

:data:`SPAWNING` and :data:`KNOWN_GOOD` are the whole table, with the reason
for each entry; docs/threat-model.md lists it.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from gatekeeper.policy.model import Connection, Grant, Policy, Program

#: Real basenames (regular expressions) that can spawn a process or run code,
#: whatever flags they get, with the reason.
SPAWNING: Final[tuple[tuple[str, str], ...]] = (
    (
        r"vim\.(nox|gtk\d*|athena|motif|lesstif)",
        "vim with :perl/:python/:lua/:ruby, unrestricted by -Z",
    ),
    (
        r"vim\.(basic|tiny)|vim|vi|view|ex|rvim|rview|vimdiff",
        "vim: 'shell' + brace expansion and csprg spawn commands despite -Z",
    ),
    (r"nvi|elvis|ed|red|vile|sed", "editor with a ! (filter or shell) command"),
    (r"nvim", "neovim embeds Lua and a terminal"),
    (r"emacs.*|mg|jed|joe|jmacs|jstar|jpico|rjoe", "editor with a shell or an extension language"),
    (r"mc|mcedit|mcview", "Midnight Commander runs a subshell and user menus"),
    (
        r"python.*|perl.*|ruby.*|lua.*|node(js)?|tclsh.*|wish.*|php.*|guile.*|[gmn]?awk",
        "a language interpreter",
    ),
    (
        (
            r"sh|bash|dash|zsh|ksh.*|mksh|fish|csh|tcsh|rbash|busybox"
            r"|env|xargs|find|nice|timeout|setsid|script|expect"
        ),
        "a shell, or runs a command",
    ),
    (
        r"more|most|pg|man|info|pinfo|lynx|w3m|elinks|links2?",
        "pager or browser with shell or filter commands",
    ),
    (
        r"git|ssh|scp|sftp|rsync|tmux|screen|sudo|su|gdb|strace|ltrace",
        "runs other programs by design",
    ),
)
_SPAWNING: Final = tuple((re.compile(rf"^(?:{pattern})$"), why) for pattern, why in SPAWNING)

#: Uncontained programs known not to spawn, with the argv shape that makes them safe.
KNOWN_GOOD: Final[tuple[tuple[str, str], ...]] = (
    (
        "less",
        (
            "with LESSSECURE=1 (always set) less refuses !, |, v, :e and log files; "
            "needs '--' and a file after it (never stdin) and no '+command' option"
        ),
    ),
    (
        "nano",
        (
            "with --restricted (or -R) nano cannot open other files, spawn or suspend; "
            "needs '--' before the file"
        ),
    ),
    ("rnano", "restricted nano (same as nano --restricted); needs '--' before the file"),
)


def real_path(path: str) -> str:
    """``argv[0]`` with every symlink resolved (``/usr/bin/vim`` -> ``/usr/bin/vim.basic``)."""
    return os.path.realpath(path)


def _after_dashdash(argv: tuple[str, ...]) -> tuple[str, ...] | None:
    if "--" not in argv[1:]:
        return None
    index = argv.index("--", 1)
    files = argv[index + 1 :]
    return files if files and "-" not in files else None


def spawning_reason(real: str, argv: tuple[str, ...]) -> str | None:
    """Why this uncontained program is unsafe for any guest; ``None`` if it is known-good.

    ``""`` means "unknown": not in either table (check warns, login allows it for
    an account that cannot attach).
    """
    base = os.path.basename(real)
    if base == "less":
        options = argv[1 : argv.index("--", 1)] if "--" in argv[1:] else argv[1:]
        if _after_dashdash(argv) is None or any(o.startswith("+") for o in options):
            return "less needs '--', a file after it (never stdin) and no '+command'"
        return None
    if base in ("nano", "rnano"):
        options = argv[1 : argv.index("--", 1)] if "--" in argv[1:] else argv[1:]
        restricted = base == "rnano" or "--restricted" in options or "-R" in options
        if not restricted or _after_dashdash(argv) is None:
            return "nano needs --restricted and '--' before the file"
        return None
    for pattern, why in _SPAWNING:
        if pattern.match(base):
            return why
    return ""


def fix_text(name: str) -> str:
    """The fix offered with every containment error."""
    return (
        f"give the program its own guest account that cannot attach, "
        f"or set programs.{name}.sandbox = true"
    )


def attaching_grants(policy: Policy, connection: Connection) -> list[Grant]:
    """Session grants this account could use, ignoring time and ``from``.

    A grant for ``people`` counts for every account: a person's key may be on
    any account, and tmux access belongs to the uid, not to the key.
    """
    return [
        g
        for g in policy.grants
        if g.session is not None
        and (connection.user in g.users or g.groups & connection.groups or g.people)
    ]


def login_problem(
    policy: Policy, connection: Connection, program: Program, grant: Grant
) -> tuple[str, str] | None:
    """``(reason, detail)`` if this account must not run ``program`` uncontained."""
    if program.sandbox:
        return None
    attach = attaching_grants(policy, connection)
    if attach:
        detail = (
            f"{grant.label} runs program {program.name!r} uncontained, but {attach[0].label} "
            f"lets {connection.user!r} attach to session {attach[0].session!r}"
        )
        return "uncontained_program", detail
    real = real_path(program.argv[0])
    why = spawning_reason(real, program.argv)
    if why:
        return "program_unsafe", f"{program.argv[0]} is {real}: {why}; {fix_text(program.name)}"
    return None


def pin_of(path: str) -> tuple[str, int, int, int, int] | None:
    """The identity of the file ``path`` resolves to: (real path, dev, inode, uid, mode)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_dev, st.st_ino, st.st_uid, st.st_mode)
