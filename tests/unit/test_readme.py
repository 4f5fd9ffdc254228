"""The README documents interfaces: audit fields, exit codes, guest messages. Keep it true."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from gatekeeper import exitcodes
from gatekeeper.login import audit, messages, preflight, record
from gatekeeper.login.decide import DenyReason, Inform
from gatekeeper.policy.loader import PolicyError

README = (Path(__file__).parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_audit_field_is_in_the_readme_table() -> None:
    table = _section("## Audit record")
    documented = set(re.findall(r"^\| ((?:`[a-z_0-9]+`(?:, )?)+) \|", table, flags=re.MULTILINE))
    names = {name for cell in documented for name in re.findall(r"`([a-z_0-9]+)`", cell)}
    assert names == set(audit.FIELD_NAMES)


@pytest.mark.parametrize(
    ("code", "constant"),
    [
        (1, exitcodes.EX_DENIED),
        (64, exitcodes.EX_USAGE),
        (69, exitcodes.EX_UNAVAILABLE),
        (70, exitcodes.EX_SOFTWARE),
        (75, exitcodes.EX_TEMPFAIL),
        (78, exitcodes.EX_CONFIG),
    ],
)
def test_exit_codes_in_the_readme_match_the_code(code: int, constant: int) -> None:
    assert code == constant
    assert f"\n| {code} |" in _section("### Exit codes")


@pytest.mark.parametrize(
    "template",
    [
        messages.DENIED,
        messages.BAD_REQUEST,
        messages.NEED_TTY,
        messages.NOT_RUNNING,
        messages.UNAVAILABLE,
    ],
)
def test_guest_messages_in_the_readme_match_the_code(template: str) -> None:
    shown = template.format(ref="…", name="shared")
    shown_example = template.format(ref="3f9a2c1b7d4e5f60", name="shared")
    section = _section("### What the guest sees")
    assert shown in section or shown_example in section


def test_every_audit_reason_is_in_the_readme_table() -> None:
    table = _section("## Audit reasons")
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", table, flags=re.MULTILINE))
    assert documented == dict(audit.REASONS)


def test_the_reasons_table_is_closed_over_every_stage() -> None:
    """Every reason a stage can give is documented; a new one fails here first."""
    stage_reasons = {
        *get_args(DenyReason),
        *get_args(preflight.Reason),
        *(f"policy_{kind}" for kind in get_args(get_type_hints(PolicyError.__init__)["kind"])),
        *(f"inform_{what}" for what in get_args(get_type_hints(Inform)["what"])),
        record.Failure.bad_invocation().reason,
        record.Failure.internal(ValueError()).reason,
        "granted",
    }
    host_reasons = {"expired", "not_granted"}
    assert stage_reasons | host_reasons == audit.REASON_NAMES
    assert all("\n" not in meaning and meaning for _, meaning in audit.REASONS)
