"""``gatekeeperctl audit``: review the audit trail (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(_args: argparse.Namespace) -> int:
    print("gatekeeperctl audit: not implemented yet", file=sys.stderr)
    return 69


def register(subparsers: Any) -> None:
    """Add ``audit``."""
    parser = subparsers.add_parser("audit", help="review the audit trail")
    parser.set_defaults(handler=_run)
