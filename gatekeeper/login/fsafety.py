"""File-system safety checks, in the spirit of sshd's StrictModes.

Two questions, both asked before anything is trusted:

* :func:`read_trusted` - may this policy file be believed? It must be a
  regular file owned by a trusted uid (root), not writable by group or
  others, in root-owned directories nobody else can rewrite. A sticky
  world-writable directory such as ``/tmp`` is tolerated only when root owns
  it: others cannot rename a root-owned entry out of it, but the owner of a
  sticky directory can, so a sticky directory owned by anyone else is not.
* :func:`check_socket` - is this the host's tmux socket, or one a group
  member planted (SECURITY.md §20, attack corpus TMUX-16)? It must be a
  socket (not a symlink) owned by the session owner, in a directory owned by
  the owner or root that the guest cannot write, or that is sticky and not
  the guest's (the owner of a directory can always rename entries in it, and
  can chmod it writable again).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

MAX_POLICY_BYTES: Final = 16 * 1024 * 1024

SocketProblem = Literal[
    "socket_missing",
    "socket_inaccessible",
    "socket_not_a_socket",
    "socket_owner_mismatch",
    "socket_dir_unsafe",
    "socket_path_unsafe",
]


class UnsafeFileError(Exception):
    """The file exists but must not be trusted; ``str(error)`` says why."""


def writable_by(st: os.stat_result, uid: int, gids: Collection[int]) -> bool:
    """Whether ``uid`` (with groups ``gids``) may write an inode, POSIX class rules."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def guest_controls(st: os.stat_result, uid: int, gids: Collection[int]) -> bool:
    """Whether ``uid`` can replace entries of a directory: it owns it, or may write it unsticky.

    Owning a directory is enough whatever its mode (``chmod`` is the owner's),
    and the sticky bit does not restrain the directory's owner.
    """
    if st.st_uid == uid:
        return True
    return writable_by(st, uid, gids) and not st.st_mode & stat.S_ISVTX


def _ancestors(path: str) -> Iterator[str]:
    """``/a/b/c`` -> ``/``, ``/a``, ``/a/b`` (the directories holding ``path``)."""
    parts = path.split("/")[1:-1]
    yield "/"
    prefix = ""
    for part in parts:
        prefix += "/" + part
        yield prefix


def read_trusted(path: str, trusted_uids: Collection[int] = (0,)) -> bytes:
    """Read a root-owned configuration file, or raise.

    Raises ``FileNotFoundError``/``PermissionError`` (missing, unreadable) or
    :class:`UnsafeFileError` (exists but could have been written by someone
    other than a trusted uid).
    """
    real = os.path.realpath(path)
    for directory in _ancestors(real):
        st = os.stat(directory)
        group_or_other = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky = st.st_mode & stat.S_ISVTX
        if st.st_uid not in trusted_uids:
            raise UnsafeFileError(f"directory {directory} is owned by uid {st.st_uid}")
        if group_or_other and not sticky:
            raise UnsafeFileError(f"directory {directory} is writable by group or others")
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{real} is not a regular file")
        if st.st_uid not in trusted_uids:
            raise UnsafeFileError(f"{real} is owned by uid {st.st_uid}, not root")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeFileError(f"{real} is writable by group or others")
        if st.st_size > MAX_POLICY_BYTES:
            raise UnsafeFileError(f"{real} is larger than {MAX_POLICY_BYTES} bytes")
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_socket(
    path: str, owner_uid: int, guest_uid: int, guest_gids: Collection[int]
) -> tuple[SocketProblem, str] | None:
    """Return ``None`` if ``path`` is the owner's socket in a safe place, else a reason.

    Checked as the guest, just before exec: the literal path must not pass
    through a symlink the guest (or anyone but root) controls, every real
    ancestor must be unwritable by the guest unless sticky, the socket's own
    directory must be owned by the owner or root, and the socket must be a
    socket owned by the owner.
    """
    try:
        for directory in _ancestors(path):
            if os.path.islink(directory) and os.lstat(directory).st_uid != 0:
                return "socket_path_unsafe", f"{directory} is a symlink not owned by root"
        real_dir = os.path.realpath(os.path.dirname(path))
        for directory in _ancestors(real_dir):
            st = os.stat(directory)
            if guest_controls(st, guest_uid, guest_gids):
                return "socket_path_unsafe", f"{directory} is writable by the guest"
        socket_name = os.path.basename(path)
        st_dir = os.stat(real_dir)
        if st_dir.st_uid not in (owner_uid, 0):
            return "socket_dir_unsafe", f"{real_dir} is owned by uid {st_dir.st_uid}"
        if guest_controls(st_dir, guest_uid, guest_gids):
            return "socket_dir_unsafe", f"{real_dir} is writable by the guest and not sticky"
        st_sock = os.lstat(os.path.join(real_dir, socket_name))
    except FileNotFoundError:
        return "socket_missing", f"{path} does not exist"
    except PermissionError:
        return "socket_inaccessible", f"{path} cannot be reached by uid {guest_uid}"
    except OSError as error:
        return "socket_inaccessible", f"{path}: {error.strerror}"
    if not stat.S_ISSOCK(st_sock.st_mode):
        return "socket_not_a_socket", f"{path} is not a socket"
    if st_sock.st_uid != owner_uid:
        return "socket_owner_mismatch", f"{path} is owned by uid {st_sock.st_uid}"
    return None
