"""``gatekeeperctl demo``: run a throwaway demo on loopback (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(_args: argparse.Namespace) -> int:
    print("gatekeeperctl demo: not implemented yet", file=sys.stderr)
    return 69


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser("demo", help="run a throwaway demo on loopback")
    parser.set_defaults(handler=_run)
