"""``gatekeeperctl share``: (host) start or re-apply a shared session (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(_args: argparse.Namespace) -> int:
    print("gatekeeperctl share: not implemented yet", file=sys.stderr)
    return 69


def register(subparsers: Any) -> None:
    """Add ``share``."""
    parser = subparsers.add_parser("share", help="(host) start or re-apply a shared session")
    parser.set_defaults(handler=_run)
