"""The adversarial tier's name for the in-process harness, which lives in :mod:`gkunit`.

Kept so tests written against ``gkadv_unit`` keep working; new tests import gkunit.
"""

from __future__ import annotations

from gkunit import (
    POLICY_BODY,
    Result,
    connect_once,
    policy_strings,
    printable_ascii,
    write_policy,
)

__all__ = [
    "POLICY_BODY",
    "Result",
    "connect_once",
    "policy_strings",
    "printable_ascii",
    "write_policy",
]
