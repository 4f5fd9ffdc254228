"""``gatekeeperctl who``: list who is attached to a session (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(_args: argparse.Namespace) -> int:
    print("gatekeeperctl who: not implemented yet", file=sys.stderr)
    return 69


def register(subparsers: Any) -> None:
    """Add ``who``."""
    parser = subparsers.add_parser("who", help="list who is attached to a session")
    parser.set_defaults(handler=_run)
