"""``gatekeeperctl schema``: the policy's JSON Schema, for editors."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def render() -> str:
    """The schema as committed in ``etc/gatekeeper.schema.json``."""
    from gatekeeper.policy.loader import json_schema  # noqa: PLC0415

    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _run(_args: argparse.Namespace) -> int:
    sys.stdout.write(render())
    return 0


def register(subparsers: Any) -> None:
    """Add ``schema``."""
    parser = subparsers.add_parser("schema", help="print the policy's JSON Schema")
    parser.set_defaults(handler=_run)
