"""Read what sshd tells us about the connection, once, into a frozen value.

This is the only module that interprets ``SSH_*`` variables (the shape of
gitlab-shell's ``sshenv``). Identity comes from the kernel
(``os.getuid()``) and the user database, never from ``$USER``/``$LOGNAME``
(SECURITY.md §14). ``SSH_ORIGINAL_COMMAND`` is kept as raw bytes: it is
parsed strictly by :mod:`gatekeeper.login.request`.
"""

from __future__ import annotations

import base64
import binascii
import grp
import hashlib
import os
import pwd
import stat
from typing import TYPE_CHECKING, Final

from gatekeeper.policy.model import Connection

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MAX_AUTH_INFO_BYTES: Final = 64 * 1024
#: Characters of a policy name (model.NAME_PATTERN), checked without importing re.
_NAME_CHARS: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_NAME_MAX: Final = 64


def person_from_sshd(value: bytes | None) -> str | None:
    """``GATEKEEPER_PERSON`` if it is a well-formed person name, else None.

    sshd sets it from the ``environment=`` option the authorized-keys command
    printed; the client cannot (``AcceptEnv`` names nothing it sends, and
    ``PermitUserEnvironment`` lets only this one name through, SECURITY.md §29).
    """
    if not value or len(value) > _NAME_MAX or not _NAME_CHARS.issuperset(value):
        return None
    return value.decode("ascii")


def fingerprint(blob_b64: str) -> str | None:
    """OpenSSH's SHA256 fingerprint of a base64 public-key blob (as ``ssh-keygen -lf``)."""
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def fingerprints_from_auth_info(text: str) -> tuple[str, ...]:
    """Fingerprints of the ``publickey`` lines of an ``SSH_USER_AUTH`` file, in order."""
    found: list[str] = []
    for line in text.splitlines():
        words = line.split(" ")
        if len(words) >= 3 and words[0] == "publickey":
            fpr = fingerprint(words[2])
            if fpr is not None:
                found.append(fpr)
    return tuple(found)


def _read_auth_info(path: bytes) -> str:
    """Read the ``SSH_USER_AUTH`` file: a regular file, no symlink, size-capped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, MAX_AUTH_INFO_BYTES).decode("ascii", errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _split_endpoint(value: bytes | None) -> tuple[str | None, int | None, str | None, int | None]:
    """``SSH_CONNECTION`` is ``client_ip client_port server_ip server_port``."""
    if value is None:
        return None, None, None, None
    words = value.decode("ascii", errors="replace").split(" ")
    if len(words) != 4 or not words[1].isdigit() or not words[3].isdigit():
        return None, None, None, None
    return words[0], int(words[1]), words[2], int(words[3])


def group_names(user: str, gid: int, gids: Iterable[int]) -> frozenset[str]:
    """Names of the primary group and the supplementary groups."""
    names: set[str] = set()
    for g in {gid, *gids}:
        try:
            names.add(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    del user
    return frozenset(names)


def read(environ: Mapping[bytes, bytes], *, stdin_is_tty: bool) -> Connection:
    """Build the :class:`Connection` from the process and its (bytes) environment."""
    uid = os.getuid()
    try:
        entry = pwd.getpwuid(uid)
        user, gid, home = entry.pw_name, entry.pw_gid, entry.pw_dir
    except KeyError:
        user, gid, home = f"uid{uid}", os.getgid(), "/"
    client_addr, client_port, server_addr, server_port = _split_endpoint(
        environ.get(b"SSH_CONNECTION")
    )
    auth_path = environ.get(b"SSH_USER_AUTH")
    keys = fingerprints_from_auth_info(_read_auth_info(auth_path)) if auth_path else ()
    tty_raw = environ.get(b"SSH_TTY")
    term_raw = environ.get(b"TERM")
    return Connection(
        user=user,
        uid=uid,
        gid=gid,
        home=home,
        groups=group_names(user, gid, os.getgroups()),
        key_fingerprints=keys,
        sshd_person=person_from_sshd(environ.get(b"GATEKEEPER_PERSON")),
        client_addr=client_addr,
        client_port=client_port,
        server_addr=server_addr,
        server_port=server_port,
        tty=tty_raw.decode("utf-8", errors="surrogateescape") if tty_raw else None,
        has_tty=tty_raw is not None and stdin_is_tty,
        term=term_raw.decode("utf-8", errors="surrogateescape") if term_raw else None,
        original_command=environ.get(b"SSH_ORIGINAL_COMMAND"),
    )
