"""``gatekeeperctl sshd-config``: print the hardened sshd Match block for the policy's guests (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(_args: argparse.Namespace) -> int:
    print("gatekeeperctl sshd-config: not implemented yet", file=sys.stderr)
    return 69


def register(subparsers: Any) -> None:
    """Add ``sshd-config``."""
    parser = subparsers.add_parser(
        "sshd-config", help="print the hardened sshd Match block for the policy's guests"
    )
    parser.set_defaults(handler=_run)
