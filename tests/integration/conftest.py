"""Fixtures for the integration tier: a host's tmux session, an observer to play the guest."""

from __future__ import annotations

import grp
from collections.abc import Callable, Iterator
from pathlib import Path

import gktest
import pytest
from gkhost import HostSession, Observer, start_host_session


@pytest.fixture
def observer(world_dir: Path) -> Iterator[Observer]:
    gktest.require_tool("tmux", "setpriv")
    tmux = gktest.Tmux(str(world_dir / "observer.sock"))
    tmux.cmd("-f", "/dev/null", "new-session", "-d", "-s", "obs", "-x", "100", "-y", "30", "sh")
    tmux.cmd("set-option", "-g", "remain-on-exit", "on")
    try:
        yield Observer(tmux)
    finally:
        tmux.kill()


@pytest.fixture
def host_session(accounts, world_dir: Path) -> Iterator[HostSession]:
    session = start_host_session(
        accounts.host, world_dir / "tmux", grp.getgrnam(accounts.group).gr_gid
    )
    try:
        yield session
    finally:
        session.tmux.kill()


PolicyWriter = Callable[[str], Path]


@pytest.fixture
def write_policy(world_dir: Path, journal: gktest.Journal) -> PolicyWriter:
    """Write a root-owned policy whose audit goes to the test journald namespace."""
    counter = iter(range(1000))

    def write(body: str) -> Path:
        header = f'version = 1\n[audit]\njournal_socket = "{journal.socket}"\n'
        path = world_dir / f"policy{next(counter)}.toml"
        return gktest.write_root_file(path, header + body)

    return write
