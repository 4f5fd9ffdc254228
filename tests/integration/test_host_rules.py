"""The host-side rules that need no tmux server: who gets access, what hooks may contain.

Table-driven, against the installed package (the same code the hooks run).
"""

from __future__ import annotations

import pwd
from datetime import UTC, datetime, timedelta

import gktest
import pytest

from gatekeeper.host import control as hostlib
from gatekeeper.policy.loader import parse

CTL = ["/opt/gk/venv/bin/gatekeeperctl"]


@pytest.mark.parametrize(
    "path",
    [
        "/etc/gate keeper.toml",
        "/etc/#(id).toml",
        "/etc/gk;id.toml",
        "/etc/gk'.toml",
        "/etc/$HOME.toml",
        'relative/"x".toml',
        "/etc/gk`id`.toml",
    ],
)
def test_a_hook_never_carries_a_path_tmux_or_sh_would_interpret(path: str) -> None:
    with pytest.raises(hostlib.HostError):
        hostlib.hook_command(CTL, "join", path, "shared")


def test_the_hook_command_holds_only_fixed_words_and_the_quoted_hook_client() -> None:
    command = hostlib.hook_command(CTL, "leave", "/etc/gatekeeper.toml", "shared")
    assert command == (
        "run-shell -b '/opt/gk/venv/bin/gatekeeperctl _hook leave --policy "
        "/etc/gatekeeper.toml shared #{q:hook_client} </dev/null >/dev/null 2>&1'"
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("/dev/pts/3", True),
        ("client-1234", True),
        ("/dev/pts/3;id", False),
        ("#(id)", False),
        ("/dev/pts/../../etc/passwd", False),
        ("", False),
    ],
)
def test_only_real_client_names_reach_the_hook_handler(name: str, ok: bool) -> None:
    assert bool(hostlib.CLIENT_NAME.match(name)) is ok


def test_the_hidden_hook_refuses_a_forged_client_name() -> None:
    result = gktest.run_as(
        None,
        [str(gktest.GATEKEEPERCTL), "_hook", "join", "--policy", "/nonexistent", "s", "#(id)"],
        {"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 64
    assert result.stdout == b""


def _policy(grants: str, owner: str = "root"):
    text = f"""version = 1
[sessions.shared]
socket = "/run/gk/shared.sock"
owner = "{owner}"
target = "shared"
{grants}
"""
    return parse(text.encode())[1]


NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_access_is_the_strongest_live_grant_with_groups_expanded(accounts) -> None:
    policy = _policy(
        f"""
[[grant]]
groups = ["{accounts.group}"]
session = "shared"
mode = "read-only"

[[grant]]
users = ["{accounts.pairer.name}"]
session = "shared"
mode = "read-write"

[[grant]]
users = ["{accounts.outsider.name}"]
session = "shared"
expires = {(NOW - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
""",
        owner=accounts.member.name,
    )
    assert hostlib.access_at(policy, "shared", NOW) == {
        accounts.guest.name: "read-only",
        accounts.pairer.name: "read-write",
    }  # the owner (a group member) and the expired outsider are left out
    assert hostlib.socket_group(policy, "shared") == accounts.group


def test_grant_boundaries_are_the_future_starts_and_ends() -> None:
    soon, later = NOW + timedelta(minutes=5), NOW + timedelta(hours=1)
    user = pwd.getpwuid(0).pw_name
    policy = _policy(
        f"""
[[grant]]
users = ["{user}"]
session = "shared"
not_before = {soon.strftime("%Y-%m-%dT%H:%M:%SZ")}
expires = {later.strftime("%Y-%m-%dT%H:%M:%SZ")}
"""
    )
    assert hostlib.boundaries(policy, "shared", NOW) == [soon, later]
    assert hostlib.boundaries(policy, "shared", soon) == [later]
