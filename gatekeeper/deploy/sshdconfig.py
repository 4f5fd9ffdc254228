"""``gatekeeperctl sshd-config``: the hardened sshd ``Match`` block(s) for the policy's guests.

The gatekeeper is only as safe as the sshd around it (SECURITY.md §1):

* ForceCommand covers session channels only - ``-L``/``-R``/``-D``/``-W``,
  Unix-socket, agent and X11 forwarding never run it, and a forwarded tmux
  socket turns a read-only guest into the host (§1.1-1.2). Hence
  ``DisableForwarding yes`` plus every per-kind switch, and ``PermitTunnel no``;
* sshd runs ``<login shell> -c "<ForceCommand>"``: the command must be an
  absolute path with nothing a shell would interpret (§1.3-1.4);
* Debian's ``AcceptEnv LANG LC_*`` passes any ``LC_*`` value verbatim (§2.9):
  an ``AcceptEnv`` inside Match *replaces* the global list, so we name one
  variable no client uses and nothing the client sends is accepted;
* the first value obtained wins, across Match blocks too (§1.6): the output is
  meant for ``/etc/ssh/sshd_config.d/``, which Debian includes at the top of
  ``sshd_config``, before any Match block there.

``PermitUserEnvironment`` and ``LogLevel`` are refused inside Match; they are
printed as comments for the global section. The output passes ``sshd -t``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Final

from gatekeeper import __version__
from gatekeeper.cli.common import add_policy_option
from gatekeeper.deploy import guestset
from gatekeeper.policy.loader import PolicyError, load
from gatekeeper.policy.model import AUTHORIZED_KEYS_COMMAND, DEFAULT_PATH, Policy

DEFAULT_GATEKEEPER: Final = "/usr/bin/gatekeeper"
DEFAULT_AUTHORIZED_KEYS: Final = "/usr/bin/gatekeeper-authorized-keys"
#: The AuthorizedKeysCommandUser: it only reads the world-readable policy and
#: cache, owns no file and needs no account of its own (docs/identity.md).
DEFAULT_AUTHORIZED_KEYS_USER: Final = "nobody"

#: A variable name no client sends: ``AcceptEnv`` inside Match replaces the
#: global list (Debian's ``LANG LC_*``), and an empty ``AcceptEnv`` is a syntax
#: error, so one inert name is the way to accept nothing. The gatekeeper
#: builds its children's environment from scratch anyway (SPEC §4).
ACCEPT_NOTHING: Final = "GATEKEEPER_ACCEPTS_NO_CLIENT_ENV"

#: Paths that ``sh -c`` passes through unchanged (sshd runs ForceCommand via
#: the login shell): no spaces, quotes, ``$``, globs or other metacharacters.
_SHELL_SAFE_PATH: Final = re.compile(r"^/[A-Za-z0-9._+/-]*$")

#: The body of every Match block: (keyword, value). Order follows SECURITY.md §1.8.
HARDENED: Final[tuple[tuple[str, str], ...]] = (
    ("DisableForwarding", "yes"),
    ("PermitTunnel", "no"),
    ("AllowAgentForwarding", "no"),
    ("AllowTcpForwarding", "no"),
    ("AllowStreamLocalForwarding", "no"),
    ("X11Forwarding", "no"),
    ("PermitOpen", "none"),
    ("PermitListen", "none"),
    ("PermitUserRC", "no"),
    ("PermitTTY", "yes"),
    ("AcceptEnv", ACCEPT_NOTHING),
    ("AuthenticationMethods", "publickey"),
    ("ExposeAuthInfo", "yes"),
    ("MaxSessions", "1"),
)

#: Global-only settings (sshd refuses them inside Match).
GLOBAL_ONLY: Final[tuple[tuple[str, str, str], ...]] = (
    (
        "PermitUserEnvironment",
        "no",
        "~/.ssh/environment and environment= must not reach the gatekeeper",
    ),
    ("LogLevel", "VERBOSE", "sshd logs the key fingerprint of every login"),
)


class ConfigError(Exception):
    """The Match block cannot be generated; ``str(error)`` says why."""


def force_command(gatekeeper: str, policy: str | None) -> str:
    """The ForceCommand value: the absolute launcher, plus ``--policy`` when not the default."""
    words = [gatekeeper]
    if policy is not None and policy != DEFAULT_PATH:
        words += ["--policy", policy]
    for word in words:
        if word != "--policy" and not _SHELL_SAFE_PATH.fullmatch(word):
            raise ConfigError(
                f"{word!r} must be an absolute path of letters, digits and ._+-/ only "
                "(sshd runs ForceCommand through the login shell)"
            )
        if word != "--policy" and any(part in {".", ".."} for part in word.split("/")):
            raise ConfigError(f"{word!r} must be a normalised path (no '.' or '..')")
    return " ".join(words)


def guests(policy: Policy) -> list[str]:
    """The guest accounts, by name, groups expanded; a ConfigError if a grant reaches a non-guest.

    Never ``Match Group``: a session owner or any other non-guest in a granted
    group would get the ForceCommand (SECURITY.md §30, :mod:`gatekeeper.deploy.guestset`).
    """
    found = guestset.classify(policy)
    refused = [item for item in found.refused if not item.misshapen_guest]
    if refused:
        raise ConfigError("; ".join(guestset.refusal_text(item) for item in refused))
    # An account the admin named in users that is not guest-shaped yet (bash, its
    # own home) is still matched: that is what the admin asked for, `check` fails
    # on it and `doctor` says how to fix it. Owners, root and accounts reached only
    # through a group never are.
    named = {item.name for item in found.refused if item.misshapen_guest}
    return [name for name in _reached_order(policy) if name in set(found.guests) | named]


def _reached_order(policy: Policy) -> list[str]:
    """Every account the grants reach, in file order (users first, then group members)."""
    order: list[str] = []
    for grant in policy.grants:
        for user in sorted(grant.users):
            if user not in order:
                order.append(user)
        for group in sorted(grant.groups):
            order += [m for m in guestset.group_members(group) or [] if m not in order]
    return order


@dataclass(frozen=True)
class KeysCommand:
    """sshd authenticates guest keys from the policy (``[identity] source``, SECURITY.md §29)."""

    command: str  # the AuthorizedKeysCommand value, %u %t %k %f included
    user: str


def keys_command(path: str, policy: str | None, user: str) -> KeysCommand:
    """The ``AuthorizedKeysCommand`` line: absolute launcher, ``--policy`` when not default."""
    words = force_command(path, policy).split(" ")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise ConfigError(f"{user!r} is not an account name")
    return KeysCommand(" ".join([*words, "%u", "%t", "%k", "%f"]), user)


def render_block(criteria: str, command: str, keys: KeysCommand | None = None) -> str:
    """One ``Match`` block with the hardened body."""
    lines = [f"Match {criteria}", f"    ForceCommand {command}"]
    lines += [f"    {keyword} {value}" for keyword, value in HARDENED]
    if keys is not None:
        lines += [
            "    AuthorizedKeysFile none",
            f"    AuthorizedKeysCommand {keys.command}",
            f"    AuthorizedKeysCommandUser {keys.user}",
        ]
    return "\n".join(lines) + "\n"


def render(
    users: list[str],
    command: str,
    source: str = DEFAULT_PATH,
    *,
    people_only: bool = False,
    keys: KeysCommand | None = None,
) -> str:
    """The whole drop-in file: header, global lines as comments, the Match block(s)."""
    if not users:
        raise ConfigError("the policy grants nothing to any guest account: no Match block to print")
    out = [
        f"# ssh-gatekeeper {__version__}: generated by `gatekeeperctl sshd-config` from {source}.",
        "# Install as /etc/ssh/sshd_config.d/10-gatekeeper.conf (Debian includes that",
        "# directory at the top of sshd_config; the first value obtained wins, across",
        "# Match blocks too, so no earlier Match may match these guests).",
        "# Check with: sshd -t && gatekeeperctl doctor",
        "#",
        "# Global settings that sshd refuses inside Match - put them in the global part",
        "# of /etc/ssh/sshd_config (before any Match line):",
    ]
    out += [
        f"#   {keyword} {value}    # {why}"
        for keyword, value, why in GLOBAL_ONLY
        if keys is None or keyword != "PermitUserEnvironment"
    ]
    if keys is not None:
        out += [
            "#",
            '# [identity] source = "authorized-keys-command": sshd asks the policy for',
            "# guest keys and sets GATEKEEPER_PERSON from the line it returns. sshd refuses",
            "# PermitUserEnvironment inside Match, so this line is global (this file is",
            "# included before the rest of sshd_config: it wins). It lets through that one",
            "# variable name and nothing else (LD_PRELOAD, PATH... are still dropped), for",
            "# every account, from ~/.ssh/environment and environment= options. Guests'",
            "# homes are root's, so only the policy's key line can set it for a guest.",
            "PermitUserEnvironment GATEKEEPER_PERSON",
        ]
    if people_only:
        out += [
            "#",
            "# Note: some grants name only people; sshd matches accounts, so the",
            "# accounts those people log in to must also be listed here (add them",
            "# to a grant's users or groups).",
        ]
    out.append("")
    out += [
        "# Guests are matched by account name (groups expanded when this was generated):",
        "# a session owner or any other non-guest is never matched (SECURITY.md §30).",
        "# Re-run after adding a guest.",
        render_block("User " + ",".join(users), command, keys),
    ]
    return "\n".join(out)


def _run(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.policy) if args.policy else DEFAULT_PATH
    try:
        policy = load(path)
        command = force_command(args.gatekeeper, path)
        users = guests(policy)
        people_only = any(g.people and not (g.users or g.groups) for g in policy.grants)
        keys = None
        if policy.identity_source == AUTHORIZED_KEYS_COMMAND:
            keys = keys_command(args.authorized_keys, path, args.authorized_keys_user)
        text = render(users, command, path, people_only=people_only, keys=keys)
    except PolicyError as error:
        print(f"gatekeeperctl sshd-config: {error.render()}", file=sys.stderr)
        return 1
    except ConfigError as error:
        print(f"gatekeeperctl sshd-config: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def register(subparsers: Any) -> None:
    """Add ``sshd-config``."""
    parser = subparsers.add_parser(
        "sshd-config",
        help="print the hardened sshd Match block for the policy's guests",
        description="Print the hardened sshd Match block(s) for every user and group the "
        "policy grants something to, ready for /etc/ssh/sshd_config.d/.",
    )
    add_policy_option(parser)
    parser.add_argument(
        "--gatekeeper",
        metavar="PATH",
        default=DEFAULT_GATEKEEPER,
        help=f"absolute path of the gatekeeper launcher (default: {DEFAULT_GATEKEEPER})",
    )
    parser.add_argument(
        "--authorized-keys",
        metavar="PATH",
        default=DEFAULT_AUTHORIZED_KEYS,
        help="absolute path of the AuthorizedKeysCommand launcher "
        f"(default: {DEFAULT_AUTHORIZED_KEYS}; used with [identity] source = "
        '"authorized-keys-command")',
    )
    parser.add_argument(
        "--authorized-keys-user",
        metavar="USER",
        default=DEFAULT_AUTHORIZED_KEYS_USER,
        help=f"AuthorizedKeysCommandUser (default: {DEFAULT_AUTHORIZED_KEYS_USER})",
    )
    parser.set_defaults(handler=_run)
