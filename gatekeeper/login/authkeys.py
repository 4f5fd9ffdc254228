"""sshd's ``AuthorizedKeysCommand``: the policy's keys, nothing else (SECURITY.md §29).

``gatekeeper-authorized-keys [--policy P] USER TYPE KEY [FINGERPRINT]`` (sshd:
``%u %t %k %f``) prints one ``authorized_keys`` line::

    restrict,pty,environment="GATEKEEPER_PERSON=bob",expiry-time="20261231235959Z" TYPE KEY

when ``TYPE KEY`` is a well-formed key whose fingerprint a person of the
policy lists, and that person has a grant for ``USER`` (the account, one of
its groups, or - for a people-only grant - any account) that is valid now or
later. For anything else it prints nothing and exits 0: sshd refuses the key.
An error (bad arguments, an unreadable or unsafe file) prints nothing and
exits 1; sshd refuses the key then too.

``expiry-time`` is the latest ``expires`` of those grants, in UTC; it is
left out when one of them never expires. sshd refuses the key after that
moment even if nobody re-runs ``check``. ``pty``: every grant is an attach or
a program, and the gatekeeper runs both only with a terminal.

It runs for every key offered at every login, before the gatekeeper, so it is
a separate, tiny entry point (a ``gatekeeperctl`` subcommand would import
argparse and every admin tool) that imports nothing but builtin modules - not
even ``typing``, ``re``, ``json`` or ``dataclasses`` (bench/run part 5 holds
it to 2.5 x ``python3 -I -c pass``). It never reads TOML: ``gatekeeperctl
check`` (root) writes a *key index* beside the validated-policy cache
(:mod:`gatekeeper.policy.keyindex`), one line per (key, person, scope, expiry), headed
by the SHA-256 of the policy's bytes and the gatekeeper version. The command
re-hashes the policy on every run: an edited policy without ``check``, a
missing index, or one that is not root's denies every key (``doctor`` says which).

File trust is the gatekeeper's (:func:`gatekeeper.fsafety.read_trusted`),
reimplemented with ``os`` alone: regular files owned by root, not writable by
group or others, in root-owned directories nobody else can write (or sticky).
"""

from __future__ import annotations

import os
import sys

from gatekeeper import __version__

DEFAULT_POLICY = "/etc/gatekeeper.toml"
DEFAULT_DIR = "/var/cache/ssh-gatekeeper"  # = policycache.DEFAULT_DIR (a test holds them equal)
#: First word of the index header; bumped with the line format.
MAGIC = "gatekeeper-keys-1"
EX_OK = 0
EX_ERROR = 1
_MAX_FILE = 16 * 1024 * 1024
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


class _Hash:
    """The part of a sha256 object used here (an annotation only)."""

    def hexdigest(self) -> str:
        raise NotImplementedError

    def digest(self) -> bytes:
        raise NotImplementedError


class _UntrustedError(Exception):
    """A file is missing, unreadable or could be changed by someone but root."""


def _sha256(data: bytes) -> _Hash:
    # The builtin module, not hashlib (which loads OpenSSL on every key): `_sha256`
    # up to Python 3.11, `_sha2` from 3.12 (Debian 13's 3.13). A Python with neither
    # raises here: main() exits 1 and sshd refuses the key.
    try:
        import _sha2 as builtin  # type: ignore[import-not-found]  # noqa: PLC0415 - 3.12+, no stub
    except ModuleNotFoundError:
        import _sha256 as builtin  # type: ignore[import-not-found]  # noqa: PLC0415 - <= 3.11

    return builtin.sha256(data)  # type: ignore[no-any-return]  # the same object as hashlib's


def _sha256_hex(data: bytes) -> str:
    return _sha256(data).hexdigest()


def _sha256_digest(data: bytes) -> bytes:
    return _sha256(data).digest()


def fingerprint(key_type: str, key_b64: str) -> str | None:
    """``SHA256:...`` of a well-formed ``TYPE BASE64`` key (as :mod:`gatekeeper.keys`), or None."""
    import binascii  # noqa: PLC0415 - builtin

    if key_type not in KEY_TYPES or len(key_b64) > 16 * 1024:
        return None
    try:
        blob = binascii.a2b_base64(key_b64.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    name = key_type.encode("ascii")
    if blob[:4] != len(name).to_bytes(4, "big") or blob[4 : 4 + len(name)] != name:
        return None
    if len(blob) <= 4 + len(name):
        return None
    digest = binascii.b2a_base64(_sha256_digest(blob), newline=False).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _read_root_file(path: str) -> bytes:
    """The bytes of a root-owned file nobody else can change, or raise _UntrustedError."""
    if not path.startswith("/"):
        raise _UntrustedError(path)
    directory = os.path.dirname(path)
    while True:
        st = os.stat(directory)
        # As fsafety.read_trusted: root's, and not writable by group/others unless
        # sticky (nobody but root can then rename or remove root's entries).
        if st.st_uid != 0 or (st.st_mode & 0o022 and not st.st_mode & 0o1000):
            raise _UntrustedError(directory)
        if directory == "/":
            break
        directory = os.path.dirname(directory)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if st.st_uid != 0 or st.st_mode & 0o022 or (st.st_mode & 0o170000) != 0o100000:
            raise _UntrustedError(path)
        if st.st_size > _MAX_FILE:
            raise _UntrustedError(path)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def index_file(policy_path: str, cache_dir: str = DEFAULT_DIR) -> str:
    """The key index for a policy path (named like the policy cache, by its path's hash)."""
    key = _sha256_hex(os.path.abspath(policy_path).encode("utf-8", "surrogateescape"))
    return os.path.join(cache_dir, f"keys-{key[:32]}.txt")


def _groups(user: str) -> frozenset[str] | None:
    import grp  # noqa: PLC0415 - builtin; only when a grant names groups
    import pwd  # noqa: PLC0415

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return frozenset(names)


def answer(index: str, user: str, fpr: str, now: float) -> tuple[str, float | None] | None:
    """(person, latest expiry or None for never) for this key on this account, or None.

    ``index`` is the text after the header: ``FPR PERSON SCOPE EXPIRES`` lines,
    SCOPE ``u:NAME`` (this account), ``g:NAME`` (a group of it) or ``*`` (any
    account), EXPIRES a Unix time or ``-`` (never).
    """
    person = None
    latest: float | None = 0.0
    found = False
    groups: frozenset[str] | None = None
    for line in index.split("\n"):
        if not line.startswith(fpr + " "):
            continue
        _, who, scope, expires = line.split(" ")
        if person is not None and who != person:
            return None  # one key, two people: the validator forbids it; refuse
        if expires != "-" and float(expires) <= now:
            continue
        if scope.startswith("u:"):
            applies = scope[2:] == user
        elif scope.startswith("g:"):
            if groups is None:
                groups = _groups(user)
            applies = groups is not None and scope[2:] in groups
        else:
            applies = scope == "*"
        if not applies:
            continue
        person, found = who, True
        if expires == "-":
            latest = None
        elif latest is not None:
            latest = max(latest, float(expires))
    if not found or person is None:
        return None
    return person, latest


def run(argv: list[str], cache_dir: str = DEFAULT_DIR) -> tuple[int, str]:
    """(exit code, stdout) for sshd's arguments."""
    args = list(argv)
    policy_path = DEFAULT_POLICY
    if args[:1] == ["--policy"]:
        if len(args) < 2 or not args[1].startswith("/"):
            return EX_ERROR, ""
        policy_path, args = args[1], args[2:]
    if len(args) not in (3, 4):
        return EX_ERROR, ""
    user, key_type, key_b64 = args[0], args[1], args[2]
    fpr = fingerprint(key_type, key_b64)
    if fpr is None or (len(args) == 4 and args[3] != fpr):
        return EX_OK, ""  # not a key, or sshd's %f is not its %k: refuse
    try:
        raw = _read_root_file(index_file(policy_path, cache_dir)).decode("ascii")
    except (OSError, UnicodeDecodeError, _UntrustedError):
        return EX_OK, ""  # no usable index: deny every key (doctor/check say why)
    header, _, body = raw.partition("\n")
    words = header.split(" ")
    if len(words) != 4 or words[0] != MAGIC or words[2] != __version__:
        return EX_OK, ""
    if words[3] != os.path.abspath(policy_path):
        return EX_OK, ""
    try:
        policy = _read_root_file(policy_path)
    except (OSError, _UntrustedError):
        return EX_OK, ""
    if _sha256_hex(policy) != words[1]:
        return EX_OK, ""  # edited since the last `gatekeeperctl check`: stale, deny
    import time  # noqa: PLC0415 - builtin

    found = answer(body, user, fpr, time.time())
    if found is None:
        return EX_OK, ""
    person, latest = found
    options = f'restrict,pty,environment="GATEKEEPER_PERSON={person}"'
    if latest is not None:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(latest))
        options += f',expiry-time="{stamp}Z"'
    return EX_OK, f"{options} {key_type} {key_b64}\n"


def main() -> None:
    """Entry point of the ``gatekeeper-authorized-keys`` launcher."""
    try:
        code, text = run(sys.argv[1:])
    except Exception:  # noqa: BLE001 - any error: print nothing, sshd refuses the key
        code, text = EX_ERROR, ""
    if text:
        try:
            os.write(1, text.encode("ascii"))
        except (OSError, UnicodeEncodeError):
            code = EX_ERROR
    os._exit(code)  # no interpreter teardown: sshd waits for us
