"""Shared helpers for the integration and end-to-end tiers.

Real components only: a real systemd-journald in its own namespace, real
tmux servers, real accounts created with useradd, the gatekeeper run through
its installed ``python -I`` launcher. Nothing here sleeps to synchronise:
everything waits by polling with a deadline (:func:`wait_until`).

The machinery itself lives in :mod:`gatekeeper.testing` (shared with
``gatekeeperctl demo`` and ``bench/run``); this module re-exports it under the
names the tests use and adds what needs pytest (skip, or fail under CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.testing.accounts import (
    DELETED_UIDS,
    Account,
    as_user_argv,
    auth_info_files,
    create_account,
    create_group,
    delete_account,
    delete_group,
    live_pids,
    remove_auth_info,
    run_as,
    write_root_file,
)
from gatekeeper.testing.journal import JOURNALD, Journal
from gatekeeper.testing.journal import journald as _journald
from gatekeeper.testing.poll import WaitTimeoutError, wait_until
from gatekeeper.testing.tmux import Tmux

__all__ = [
    "DELETED_UIDS",
    "GATEKEEPER",
    "GATEKEEPERCTL",
    "GK_PREFIX",
    "IN_CI",
    "PYTHON",
    "VENV",
    "Account",
    "Journal",
    "Tmux",
    "WaitTimeoutError",
    "as_user_argv",
    "auth_info_files",
    "create_account",
    "create_group",
    "delete_account",
    "delete_group",
    "journald",
    "kill_pid",
    "live_pids",
    "remove_auth_info",
    "require",
    "require_root",
    "require_tool",
    "run_as",
    "shared_dir",
    "wait_until",
    "write_root_file",
]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
GK_PREFIX = Path(os.environ.get("GK_PREFIX", "/opt/ssh-gatekeeper-dev"))
VENV = GK_PREFIX / "venv"
#: The gatekeeper under test; the packaging tier points this at /usr/bin/gatekeeper.
GATEKEEPER = Path(os.environ.get("GK_GATEKEEPER", str(VENV / "bin" / "gatekeeper")))
GATEKEEPERCTL = Path(os.environ.get("GK_GATEKEEPERCTL", str(VENV / "bin" / "gatekeeperctl")))
PYTHON = VENV / "bin" / "python"


def require(condition: bool, what: str) -> None:
    """Skip when a tool or privilege is missing - but fail under CI, where nothing may skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test and missing in CI: {what}")
    pytest.skip(f"missing: {what}")


def require_tool(*names: str) -> None:
    for name in names:
        require(shutil.which(name) is not None or Path(name).exists(), name)


def require_root() -> None:
    require(os.geteuid() == 0, "root (to create throwaway accounts)")


def shared_dir(prefix: str = "gk-test-") -> Path:
    """A root-owned 0755 directory under /tmp that other accounts can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def journald(namespace: str, hostname: str | None = None) -> Iterator[Journal]:
    """A private journald namespace for the block (skipped, or failed under CI, without one)."""
    require(Path(JOURNALD).exists(), JOURNALD)
    if hostname is not None:
        require_tool("unshare")
    with _journald(namespace, hostname) as journal:
        yield journal


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
