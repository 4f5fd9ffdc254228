"""``gatekeeperctl doctor``: check the live system (sshd, accounts, sockets, tmux, journald) (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(_args: argparse.Namespace) -> int:
    print("gatekeeperctl doctor: not implemented yet", file=sys.stderr)
    return 69


def register(subparsers: Any) -> None:
    """Add ``doctor``."""
    parser = subparsers.add_parser(
        "doctor", help="check the live system (sshd, accounts, sockets, tmux, journald)"
    )
    parser.set_defaults(handler=_run)
