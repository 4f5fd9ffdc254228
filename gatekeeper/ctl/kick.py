"""``gatekeeperctl kick``: detach a user and revoke their access (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(_args: argparse.Namespace) -> int:
    print("gatekeeperctl kick: not implemented yet", file=sys.stderr)
    return 69


def register(subparsers: Any) -> None:
    """Add ``kick``."""
    parser = subparsers.add_parser("kick", help="detach a user and revoke their access")
    parser.set_defaults(handler=_run)
