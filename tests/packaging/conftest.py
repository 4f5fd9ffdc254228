"""Fixtures for the packaging tier: build the .deb once, install it with apt, purge at the end.

The tier changes the machine (it installs a package as root), so it refuses
to run where ssh-gatekeeper is already installed, and purges what it
installed when the session ends, whatever happened: the machine is left as
it was found.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import gktest
import pytest
from gkdeb import (
    PACKAGE,
    Built,
    apt_install,
    apt_purge,
    build_deb,
    installed_version,
    known_to_dpkg,
)


@pytest.fixture(scope="session")
def deb_dir() -> Iterator[Path]:
    """A world-readable output directory (apt's _apt user reads the .deb from it)."""
    gktest.require_root()
    gktest.require_tool("dpkg-deb", "dpkg-query", "apt-get", "/usr/bin/python3")
    gktest.require(not known_to_dpkg(), f"{PACKAGE} not installed before the packaging tier")
    path = gktest.shared_dir("gk-deb-")
    try:
        yield path
    finally:
        if known_to_dpkg():
            apt_purge()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def deb(deb_dir: Path) -> Built:
    """The package, built once per session from the working tree."""
    return build_deb(deb_dir)


@pytest.fixture
def installed(deb: Built) -> Built:
    """The package installed with apt (any version: the upgrade test installs a newer one)."""
    if installed_version() is None:
        apt_install(deb.path)
    return deb
