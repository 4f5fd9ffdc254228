"""Helpers shared by gatekeeperctl subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gatekeeper.policy.model import DEFAULT_PATH


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    """``--policy PATH`` (default ``/etc/gatekeeper.toml``)."""
    parser.add_argument(
        "--policy",
        metavar="PATH",
        default=None,
        help=f"policy file (default: {DEFAULT_PATH})",
    )


def policy_path(args: argparse.Namespace) -> str:
    """The policy path from ``--policy`` or a positional ``PATH``, else the default."""
    return str(getattr(args, "policy", None) or getattr(args, "path", None) or DEFAULT_PATH)


def print_json(data: Any) -> None:
    """Print one JSON document (ASCII only: safe for any terminal)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=True, indent=2, sort_keys=True) + "\n")
