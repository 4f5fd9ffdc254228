"""File-system trust (SPEC §3 fail closed, §4 socket checks; SECURITY.md §20, TMUX-16).

Tests run as root, so other owners are simulated with ``os.chown`` to uids
that need no account: the checks compare numbers, not names.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import gkunit
import pytest

from gatekeeper.login import fsafety

OWNER = 4242  # the session's host
GUEST = 65534
SHARE_GID = 4343  # the share group; the guest is a member
OTHER = 4444  # a third account
GUEST_GIDS = (GUEST, SHARE_GID)


@pytest.fixture
def base() -> Iterator[Path]:
    for directory in gkunit.policy_dir():
        yield directory.path


def make_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> Path:
    path.mkdir()
    os.chown(path, uid, gid)
    path.chmod(mode)
    return path


def bind_socket(path: Path, uid: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chown(path, uid, SHARE_GID)
    return sock


# --------------------------------------------------------------------- read_trusted


def test_read_trusted_returns_the_bytes(base: Path) -> None:
    path = base / "p.toml"
    path.write_bytes(b"version = 1\n")
    assert fsafety.read_trusted(str(path)) == b"version = 1\n"


def test_root_owned_sticky_directory_is_tolerated(base: Path) -> None:
    """Like /tmp: others cannot rename a root-owned file out of it."""
    sticky = make_dir(base / "sticky", 0o1777)
    path = sticky / "p.toml"
    path.write_bytes(b"x")
    assert fsafety.read_trusted(str(path)) == b"x"


def test_sticky_directory_owned_by_someone_else_is_not(base: Path) -> None:
    """The owner of a sticky directory may still rename or delete anything in it."""
    sticky = make_dir(base / "sticky", 0o1777, uid=GUEST)
    path = sticky / "p.toml"
    path.write_bytes(b"x")
    with pytest.raises(
        fsafety.UnsafeFileError, match=f"directory {sticky} is owned by uid {GUEST}"
    ):
        fsafety.read_trusted(str(path))


def test_not_a_regular_file(base: Path) -> None:
    fifo = base / "fifo"
    os.mkfifo(fifo, 0o644)
    with pytest.raises(fsafety.UnsafeFileError, match="is not a regular file"):
        fsafety.read_trusted(str(fifo))


def test_oversized_file(base: Path) -> None:
    path = base / "big.toml"
    with path.open("wb") as handle:
        handle.truncate(fsafety.MAX_POLICY_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(fsafety.UnsafeFileError, match="larger than"):
        fsafety.read_trusted(str(path))


def test_trusted_uids_can_be_widened(base: Path) -> None:
    path = base / "p.toml"
    path.write_bytes(b"x")
    os.chown(path, OTHER, 0)
    with pytest.raises(fsafety.UnsafeFileError, match=f"owned by uid {OTHER}"):
        fsafety.read_trusted(str(path))
    assert fsafety.read_trusted(str(path), (0, OTHER)) == b"x"


def test_missing_file_raises_file_not_found(base: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsafety.read_trusted(str(base / "nope"))


class Writable(NamedTuple):
    id: str
    mode: int
    uid: int
    gid: int
    who: int
    gids: tuple[int, ...]
    expected: bool


WRITABLE = [
    Writable("owner-with-w", 0o700, OWNER, 0, OWNER, (), expected=True),
    Writable("owner-without-w", 0o500, OWNER, 0, OWNER, (), expected=False),
    Writable("group-member-g+w", 0o770, OWNER, SHARE_GID, GUEST, GUEST_GIDS, expected=True),
    Writable("group-member-g-w", 0o750, OWNER, SHARE_GID, GUEST, GUEST_GIDS, expected=False),
    Writable("owner-class-wins-over-other", 0o507, GUEST, 0, GUEST, (), expected=False),
    Writable("other-o+w", 0o757, OWNER, 0, GUEST, GUEST_GIDS, expected=True),
    Writable("root-always", 0o000, OWNER, 0, 0, (), expected=True),
]


@pytest.mark.parametrize("case", WRITABLE, ids=[c.id for c in WRITABLE])
def test_writable_by(base: Path, case: Writable) -> None:
    path = make_dir(base / "d", case.mode, case.uid, case.gid)
    assert fsafety.writable_by(os.stat(path), case.who, case.gids) is case.expected


# --------------------------------------------------------------------- check_socket


class Layout(NamedTuple):
    """``base/<outer>/<dir>/sock``: the outer directory, the socket's directory, the socket."""

    id: str
    outer: tuple[int, int, int] | None  # (mode, uid, gid); None: socket dir directly in base
    sock_dir: tuple[int, int, int]
    sock_owner: int | None  # None: nothing at the path
    expected: str | None  # the problem, or None when safe


LAYOUTS = [
    Layout("host-dir-0750-in-share-group", None, (0o750, OWNER, SHARE_GID), OWNER, None),
    Layout("sticky-1770-share-dir", None, (0o1770, OWNER, SHARE_GID), OWNER, None),
    Layout("root-owned-0755-dir", None, (0o755, 0, 0), OWNER, None),
    Layout("under-root-sticky-1777", (0o1777, 0, 0), (0o750, OWNER, SHARE_GID), OWNER, None),
    Layout("group-writable-dir", None, (0o770, OWNER, SHARE_GID), OWNER, "socket_dir_unsafe"),
    Layout("world-writable-dir", None, (0o757, OWNER, 0), OWNER, "socket_dir_unsafe"),
    Layout("dir-owned-by-guest", None, (0o1777, GUEST, GUEST), OWNER, "socket_dir_unsafe"),
    Layout("dir-owned-by-third", None, (0o755, OTHER, 0), OWNER, "socket_dir_unsafe"),
    Layout(
        "socket-owned-by-guest", None, (0o1770, OWNER, SHARE_GID), GUEST, "socket_owner_mismatch"
    ),
    Layout("nothing-there", None, (0o750, OWNER, SHARE_GID), None, "socket_missing"),
    Layout(
        "under-group-writable",
        (0o775, 0, SHARE_GID),
        (0o750, OWNER, SHARE_GID),
        OWNER,
        "socket_path_unsafe",
    ),
    Layout(
        "under-guest-owned-sticky",
        (0o1777, GUEST, GUEST),
        (0o750, OWNER, SHARE_GID),
        OWNER,
        "socket_path_unsafe",
    ),
    Layout(
        "under-guest-owned-read-only",
        (0o555, GUEST, GUEST),
        (0o750, OWNER, SHARE_GID),
        OWNER,
        "socket_path_unsafe",
    ),
]


@pytest.mark.parametrize("case", LAYOUTS, ids=[c.id for c in LAYOUTS])
def test_check_socket(base: Path, case: Layout) -> None:
    parent = base
    if case.outer is not None:
        parent = make_dir(base / "outer", *case.outer)
    sock_dir = make_dir(parent / "tmux", *case.sock_dir)
    path = sock_dir / "sock"
    sock = bind_socket(path, case.sock_owner) if case.sock_owner is not None else None
    try:
        problem = fsafety.check_socket(str(path), OWNER, GUEST, GUEST_GIDS)
    finally:
        if sock is not None:
            sock.close()
    assert (problem[0] if problem else None) == case.expected


def test_a_regular_file_is_not_a_socket(base: Path) -> None:
    sock_dir = make_dir(base / "tmux", 0o750, OWNER, SHARE_GID)
    (sock_dir / "sock").write_bytes(b"")
    os.chown(sock_dir / "sock", OWNER, 0)
    assert fsafety.check_socket(str(sock_dir / "sock"), OWNER, GUEST, GUEST_GIDS) == (
        "socket_not_a_socket",
        f"{sock_dir / 'sock'} is not a socket",
    )


def test_a_symlink_to_the_socket_is_not_a_socket(base: Path) -> None:
    sock_dir = make_dir(base / "tmux", 0o750, OWNER, SHARE_GID)
    sock = bind_socket(sock_dir / "real", OWNER)
    try:
        (sock_dir / "sock").symlink_to(sock_dir / "real")
        os.lchown(sock_dir / "sock", OWNER, SHARE_GID)
        problem = fsafety.check_socket(str(sock_dir / "sock"), OWNER, GUEST, GUEST_GIDS)
    finally:
        sock.close()
    assert problem is not None
    assert problem[0] == "socket_not_a_socket"


def test_a_directory_symlink_owned_by_the_guest_is_refused(base: Path) -> None:
    sock_dir = make_dir(base / "tmux", 0o750, OWNER, SHARE_GID)
    sock = bind_socket(sock_dir / "sock", OWNER)
    link = base / "via"
    link.symlink_to(sock_dir)
    os.lchown(link, GUEST, GUEST)
    try:
        problem = fsafety.check_socket(str(link / "sock"), OWNER, GUEST, GUEST_GIDS)
    finally:
        sock.close()
    assert problem == ("socket_path_unsafe", f"{link} is a symlink not owned by root")


def test_the_socket_mode_bits_do_not_matter(base: Path) -> None:
    """tmux toggles the x bits to mark "attached" (SECURITY.md §20)."""
    sock_dir = make_dir(base / "tmux", 0o750, OWNER, SHARE_GID)
    sock = bind_socket(sock_dir / "sock", OWNER)
    try:
        (sock_dir / "sock").chmod(0o770)
        assert stat.S_ISSOCK(os.lstat(sock_dir / "sock").st_mode)
        assert fsafety.check_socket(str(sock_dir / "sock"), OWNER, GUEST, GUEST_GIDS) is None
    finally:
        sock.close()
