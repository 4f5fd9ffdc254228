"""Fixtures shared by every tier. See gktest.py for the helpers behind them."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gktest
import pytest


@pytest.fixture(scope="session")
def journal() -> Iterator[gktest.Journal]:
    """A real systemd-journald in a private namespace for the whole test session."""
    gktest.require_tool("journalctl")
    with gktest.journald(f"gktest{os.getpid()}") as j:
        yield j


@dataclass(frozen=True)
class Accounts:
    host: gktest.Account  # owns the tmux server
    guest: gktest.Account  # read-only guest, member of the share group
    pairer: gktest.Account  # read-write guest, member of the share group
    member: gktest.Account  # another member of the share group: a would-be attacker
    outsider: gktest.Account  # no group, no grant
    group: str


@pytest.fixture(scope="session")
def accounts() -> Iterator[Accounts]:
    """Throwaway accounts with /bin/sh and root-owned homes; removed afterwards."""
    gktest.require_root()
    gktest.require_tool("useradd", "setpriv")
    # A random tag per test session: several sessions may run at once on one machine.
    tag = secrets.token_hex(2)
    group = f"gk-share-{tag}"
    names = [f"gk-{role}-{tag}" for role in ("host", "guest", "pairer", "member", "outsider")]
    gktest.create_group(group)
    try:
        made = Accounts(
            host=gktest.create_account(names[0]),
            guest=gktest.create_account(names[1], [group]),
            pairer=gktest.create_account(names[2], [group]),
            member=gktest.create_account(names[3], [group]),
            outsider=gktest.create_account(names[4]),
            group=group,
        )
        yield made
    finally:
        for name in names:
            gktest.delete_account(name)
        gktest.delete_group(group)


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A root-owned, world-traversable scratch directory (tmp_path is 0700)."""
    path = gktest.shared_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def gatekeeper_bin() -> Path:
    """The isolated launcher under test (set GK_GATEKEEPER to test an installed one)."""
    gktest.require(gktest.GATEKEEPER.exists(), f"{gktest.GATEKEEPER} (run scripts/bootstrap)")
    return gktest.GATEKEEPER


@pytest.fixture(scope="session", autouse=True)
def _no_auth_info_left_by_deleted_accounts() -> Iterator[None]:
    """No ``/tmp/sshauth.*`` of an account this session deleted may survive it.

    Autouse and session-scoped, so it is torn down after every account fixture.
    A uid that belongs to an account again (another suite reused it) is skipped.
    """
    yield
    left = []
    for uid in sorted(gktest.DELETED_UIDS):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            left += [str(path) for path in gktest.auth_info_files(uid)]
    assert not left, f"ExposeAuthInfo files of deleted test accounts left behind: {left}"


@pytest.fixture(scope="session", autouse=True)
def _policy_cache_left_as_found() -> Iterator[None]:
    """Remove the policy-cache files this session's root-run gatekeepers wrote.

    The gatekeeper refreshes /var/cache/ssh-gatekeeper when it runs as root, so
    every temporary policy a test validates would otherwise leave an entry behind.
    """
    cache = Path("/var/cache/ssh-gatekeeper")
    existed = cache.is_dir()
    before = set(cache.iterdir()) if existed else set()
    yield
    if cache.is_dir():
        for entry in set(cache.iterdir()) - before:
            entry.unlink(missing_ok=True)
        if not existed and not any(cache.iterdir()):
            cache.rmdir()
