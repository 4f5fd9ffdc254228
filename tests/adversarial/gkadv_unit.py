"""Unit-tier helpers: drive ``connect.run`` in-process against a real root-owned policy.

``connect.run`` is the whole connection path except the final ``execve`` /
write / exit; the audit record goes to a ``sink = "file"`` next to the
policy, so "exactly one record" is a line count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gkunit

from gatekeeper.login import entry as connect
from gatekeeper.login.plan import ExecPlan

#: A policy for the account running the tests (root): one session, two programs.
#: Every string here is a "policy string": an allowed argv may contain nothing else.
POLICY_BODY = """
[sessions.shared]
socket = "/run/gk-adv-no-such-dir/sock"
owner = "root"
target = "shared"

[programs.editor]
argv = ["/usr/bin/vim.basic", "-Z", "-R", "-u", "DEFAULTS", "--", "/my_project"]

[programs.pager]
argv = ["/usr/bin/less", "--", "/my_project/README"]

[[grant]]
users = ["{user}"]
session = "shared"
mode = "read-only"
default = true

[[grant]]
users = ["{user}"]
program = "editor"

[[grant]]
users = ["{user}"]
program = "pager"
"""


def policy_strings(body: str) -> set[str]:
    """Every string literal of a policy body (what an argv element may be built from)."""
    import tomllib  # noqa: PLC0415 - helper-local

    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                found.add(key)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(tomllib.loads(body))
    return found


@dataclass
class Result:
    """What one connection did: the outcome, and every audit line it wrote."""

    outcome: object
    lines: list[str]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    @property
    def record(self) -> dict[str, Any]:
        (only,) = self.records
        return only

    @property
    def exec_plan(self) -> ExecPlan | None:
        return self.outcome if isinstance(self.outcome, ExecPlan) else None


def write_policy(pdir: gkunit.PolicyDir, body: str = POLICY_BODY) -> str:
    return str(pdir.write(body.format(user=gkunit.as_root_user())))


def connect_once(
    pdir: gkunit.PolicyDir,
    command: bytes | None,
    *,
    tty: bool = True,
    **extra: bytes,
) -> Result:
    """One connection through ``connect.run``; returns its outcome and its new audit lines."""
    before = pdir.audit_file.read_text().splitlines() if pdir.audit_file.exists() else []
    environ = gkunit.environ(command, **extra)
    if not tty:
        environ.pop(b"SSH_TTY", None)
    outcome = connect.run(["--policy", str(pdir.policy)], environ, stdin_is_tty=tty, now=gkunit.NOW)
    after = pdir.audit_file.read_text().splitlines() if pdir.audit_file.exists() else []
    return Result(outcome, after[len(before) :])


def printable_ascii(text: str) -> bool:
    return all(0x20 <= ord(ch) <= 0x7E for ch in text)
