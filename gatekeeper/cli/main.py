"""``gatekeeperctl``: the admin's and host's tool (SPEC §6).

Each subcommand lives in its own module exposing ``register(subparsers)``;
this module only wires them. Nothing here is on the per-login path, so
pydantic and libtmux may be imported freely.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Final

from gatekeeper import __version__
from gatekeeper.review.auditlog import time_values

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: Final = (
    "gatekeeper.policy.check",
    "gatekeeper.policy.explain",
    "gatekeeper.policy.schema",
    "gatekeeper.deploy.sshdconfig",
    "gatekeeper.deploy.doctor",
    "gatekeeper.deploy.guest",
    "gatekeeper.host.share",
    "gatekeeper.host.who",
    "gatekeeper.host.kick",
    "gatekeeper.review.auditlog",
    "gatekeeper.host.recordings",
    "gatekeeper.host.replay",
    "gatekeeper.deploy.demo",
)


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full argument parser (also the source of the man pages).

    ``only``: register just that subcommand's module (``audit`` then starts
    without importing every other subcommand's dependencies).
    """
    top = argparse.ArgumentParser(
        prog="gatekeeperctl",
        description="Administer ssh-gatekeeper: check and explain the policy, "
        "configure sshd, share tmux sessions, review the audit trail.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else [only]:
        importlib.import_module(name).register(subparsers)
    return top


#: Subcommands parsed by a parser holding only them (startup time on big reads).
_FAST: Final = {"audit": "gatekeeper.review.auditlog"}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run one subcommand; return its exit code."""
    words = time_values(sys.argv[1:] if argv is None else argv)
    args = parser(_FAST.get(words[0]) if words else None).parse_args(words)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
