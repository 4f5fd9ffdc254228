"""Host-side logic behind ``share``, ``who``, ``kick`` and the hidden ``_hook``/``_watch``.

Everything here runs as the session's owner (the host), never on the
connection path: libtmux is allowed (the import-linter contract keeps it out
of :mod:`gatekeeper.login.entry`). The facts it is built on are in SECURITY.md §3:

* one tmux server per shared session, at the policy's socket, in a directory
  owned by the host or root that guests cannot write (a group member could
  otherwise replace the socket, §20);
* tmux >= 3.3 refuses every other uid until ``server-access`` grants it;
  ``-ar USER`` grants read-only (``-a USER -r`` fails), ``-aw`` read-write, and
  ``server-access -d`` removes the grant *and* detaches that user's clients;
* ``SIGUSR1`` recreates the socket 0600: a watcher puts the group bits back;
* tmux < 3.7 lets a read-only client run ``switch-client`` from key bindings
  (``prefix ( ) L``), so those bindings are guarded by ``#{client_readonly}``;
* hooks run as the host: their command lines contain only host-chosen,
  validated text and ``#{q:hook_client}``, never guest text (§21, §22).

Per-client state lives in the tmux server's own user options (``@gk-*``), so
it dies with the server and needs no state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import libtmux

from gatekeeper.exitcodes import EX_UNAVAILABLE
from gatekeeper.login import audit
from gatekeeper.policy.model import READ_ONLY, READ_WRITE, Grant, Mode, Policy, Session

#: Paths and names that may appear in a hook command: tmux expands the hook and
#: ``/bin/sh`` runs it, so no quotes, spaces, ``#``, ``$`` or ``;`` - ever.
SAFE_PATH: Final = re.compile(r"^/[A-Za-z0-9_./+-]{1,255}$")
#: A tmux client name as ``#{hook_client}`` gives it: a pty path or ``client-PID``.
CLIENT_NAME: Final = re.compile(
    r"^(/dev/pts/[0-9]{1,9}|/dev/tty[A-Za-z0-9]{1,9}|client-[0-9]{1,9})$"
)
#: Default prefix bindings that run ``switch-client`` (tmux 3.3a-3.6 key-bindings.c).
SWITCH_KEYS: Final = {"(": "switch-client -p", ")": "switch-client -n", "L": "switch-client -l"}
#: tmux release that tightened read-only clients (commit 143a1770, SECURITY.md §17).
READ_ONLY_FIXED: Final = (3, 7)
MINIMUM: Final = (3, 3)
SOCKET_MODE: Final = 0o660

OPT_SESSION: Final = "@gatekeeper-session"
OPT_POLICY: Final = "@gatekeeper-policy"
OPT_POLICY_SHA: Final = "@gatekeeper-policy-sha256"
OPT_WATCHER: Final = "@gatekeeper-watcher"
OPT_KICKED: Final = "@gatekeeper-kicked"
OPT_ERROR: Final = "@gatekeeper-last-error"
OPT_WATCHING: Final = "@gatekeeper-watching"
_JOIN_PREFIX: Final = "@gk-join-"
_END_PREFIX: Final = "@gk-end-"

_CLIENT_FORMAT: Final = (
    "#{client_name}\t#{client_pid}\t#{client_uid}\t"
    "#{client_readonly}\t#{client_created}\t#{client_session}"
)


class HostError(Exception):
    """A host-side command cannot go on; ``fix`` says what to run instead."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


# --------------------------------------------------------------------------- policy


def load(path: str, name: str) -> tuple[Policy, Session]:
    """Load the policy and find session ``name``; raise :class:`HostError`."""
    from gatekeeper.policy.loader import PolicyError, load  # noqa: PLC0415 - pydantic is heavy

    try:
        policy = load(path)
    except PolicyError as error:
        raise HostError(error.render(), f"gatekeeperctl check --policy {path}") from None
    session = policy.sessions.get(name)
    if session is None:
        known = ", ".join(sorted(policy.sessions)) or "none"
        raise HostError(f"no session {name!r} in {path} (sessions: {known})")
    return policy, session


def require_owner(session: Session, *, allow_root: bool = False) -> int:
    """The caller's uid, if it owns ``session`` (or is root when allowed)."""
    uid = os.getuid()
    try:
        owner_uid = pwd.getpwnam(session.owner).pw_uid
    except KeyError:
        raise HostError(f"the session owner {session.owner} does not exist") from None
    if uid == owner_uid or (allow_root and uid == 0):
        return uid
    raise HostError(
        f"session {session.name!r} belongs to {session.owner}; this runs as {user_name(uid)}",
        f"sudo -u {session.owner} gatekeeperctl ...",
    )


# --------------------------------------------------------------------------- accounts


def user_name(uid: int) -> str:
    """The account name of ``uid`` (the uid itself if it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def uid_of(user: str) -> int | None:
    """The uid of account ``user``, or ``None``."""
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def group_members(name: str) -> set[str]:
    """Every account in group ``name``: listed members and those with it as primary group."""
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return set()
    members = set(entry.gr_mem)
    members.update(p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid)
    return members


def in_group(user: str, group: str) -> bool:
    """Whether ``user`` is a member of ``group`` (primary or supplementary)."""
    try:
        entry = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return False
    return gid in os.getgrouplist(user, entry.pw_gid)


# --------------------------------------------------------------------------- policy view


def _active(grant: Grant, at: datetime) -> bool:
    if grant.not_before is not None and at < grant.not_before:
        return False
    return not (grant.expires is not None and at >= grant.expires)


def session_grants(policy: Policy, name: str) -> list[Grant]:
    """The grants that open session ``name``."""
    return [g for g in policy.grants if g.session == name]


def access_at(policy: Policy, name: str, at: datetime) -> dict[str, Mode]:
    """Who may attach to ``name`` at ``at``, with the strongest mode (groups expanded).

    The owner and root are left out: tmux always lets them in. Grants that
    name only ``people`` cannot be mapped to accounts and are skipped (see
    :func:`warnings_for`).
    """
    owner = policy.sessions[name].owner
    access: dict[str, Mode] = {}
    for grant in session_grants(policy, name):
        if not _active(grant, at):
            continue
        users = set(grant.users)
        for group in grant.groups:
            users |= group_members(group)
        for user in users:
            if user in (owner, "root"):
                continue
            if access.get(user) != READ_WRITE:
                access[user] = grant.mode
    return access


def boundaries(policy: Policy, name: str, after: datetime) -> list[datetime]:
    """The future instants at which some grant of ``name`` starts or ends."""
    times = {
        t
        for g in session_grants(policy, name)
        for t in (g.not_before, g.expires)
        if t is not None and t > after
    }
    return sorted(times)


def socket_group(policy: Policy, name: str) -> str | None:
    """The group of the socket directory: the one group the session's grants name."""
    groups = {group for g in session_grants(policy, name) for group in g.groups}
    if len(groups) == 1:
        return next(iter(groups))
    directory = os.path.dirname(policy.sessions[name].socket)
    with contextlib.suppress(OSError, KeyError):
        st = os.stat(directory)
        if st.st_uid == 0 or st.st_mode & stat.S_ISGID:
            return grp.getgrgid(st.st_gid).gr_name
    return None


def warnings_for(policy: Policy, name: str, group: str | None) -> list[str]:
    """Grants that ``share`` cannot turn into socket access as written."""
    found: list[str] = []
    for grant in session_grants(policy, name):
        if grant.people and not (grant.users or grant.groups):
            found.append(
                f"{grant.label}: names only people; add users or groups so share "
                "knows which accounts to admit"
            )
        for user in sorted(grant.users):
            try:
                pwd.getpwnam(user)
            except KeyError:
                found.append(f"{grant.label}: user {user} does not exist")
                continue
            if group is not None and not in_group(user, group):
                found.append(
                    f"{grant.label}: {user} is not in group {group}: cannot reach the socket"
                )
        found.extend(
            f"{grant.label}: group {g} does not exist"
            for g in sorted(grant.groups)
            if not _group_exists(g)
        )
    return found


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


# --------------------------------------------------------------------------- directory


def _fix_dir(owner: str, group: str, directory: str, mode: str = "2750") -> str:
    return f"sudo install -d -o {owner} -g {group} -m {mode} {directory}"


def prepare_directory(session: Session, group: str, host_uid: int) -> list[str]:
    """Create or validate the socket directory; return what changed, raise :class:`HostError`.

    Safe means: a real directory (no symlink), owned by the host or root, in
    the share group, no access for others, and either not group-writable
    (0750; setgid so the socket inherits the group) or sticky (1770: several
    hosts share it, nobody can remove another's socket).
    """
    directory = os.path.dirname(session.socket)
    host = user_name(host_uid)
    member = in_group(host, group)
    gid = grp.getgrnam(group).gr_gid
    changes: list[str] = []
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        if not member:
            raise HostError(
                f"{directory} does not exist and {host} is not in group {group}",
                _fix_dir(host, group, directory),
            ) from None
        try:
            os.mkdir(directory, 0o700)
            os.chown(directory, -1, gid)
            os.chmod(directory, 0o2750)  # noqa: S103 - group r-x only, setgid: the point
        except OSError as error:
            raise HostError(
                f"cannot create {directory}: {error.strerror}", _fix_dir(host, group, directory)
            ) from None
        return [f"created {directory} (0750, group {group})"]
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise HostError(f"{directory} is not a directory (or is a symlink)")
    perms = stat.S_IMODE(st.st_mode)
    sticky = bool(perms & stat.S_ISVTX)
    if st.st_uid not in (host_uid, 0):
        raise HostError(
            f"{directory} is owned by {user_name(st.st_uid)}: anyone who owns it can "
            "replace the socket",
            _fix_dir(host, group, directory),
        )
    if st.st_uid == 0:
        wanted = perms & ~0o007
        problem = None
        if perms & 0o002 or (perms & 0o020 and not sticky):
            problem = "is writable by others or by the group without the sticky bit"
        elif st.st_gid != gid:
            problem = f"is in group {_group_name(st.st_gid)}, not {group}"
        elif perms != wanted:
            problem = "gives others access"
        elif not os.access(directory, os.W_OK):
            problem = f"is not writable by {host} (a root-owned directory must be 1770)"
        if problem:
            raise HostError(f"{directory} {problem}", _fix_dir(host, group, directory))
        return changes
    # Owned by the host: the host may fix it.
    if st.st_gid != gid:
        if not member:
            raise HostError(
                f"{directory} is in group {_group_name(st.st_gid)}, not {group}, and {host} "
                f"is not in {group}",
                _fix_dir(host, group, directory),
            )
        os.chown(directory, -1, gid)
        changes.append(f"set the group of {directory} to {group}")
    wanted = (0o1770 | (perms & stat.S_ISGID)) if sticky else 0o2750
    if perms != wanted:
        os.chmod(directory, wanted)
        perms = stat.S_IMODE(os.stat(directory).st_mode)
        changes.append(f"set the mode of {directory} to {perms:04o}")
    if not member and not perms & stat.S_ISGID:
        # Only a member may set setgid; without it the socket lands in the
        # host's own group and guests cannot connect.
        raise HostError(
            f"{directory} must be setgid (2750) so the socket gets group {group}, "
            f"and {host} is not in {group}",
            _fix_dir(host, group, directory),
        )
    return changes


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def repair_socket(path: str, host_uid: int, gid: int) -> str | None:
    """Put the socket's group and 0660 back (tmux recreates it 0600 on SIGUSR1)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != host_uid:
        return None  # not ours: never touch it (the gatekeeper refuses it)
    change = None
    if st.st_gid != gid:
        with contextlib.suppress(PermissionError):
            os.chown(path, -1, gid, follow_symlinks=False)
            change = f"set the group of {path}"
    perms = stat.S_IMODE(st.st_mode)
    # tmux toggles the x bits to mark "attached": keep them as they are.
    wanted = (perms & 0o110) | SOCKET_MODE
    if perms != wanted:
        os.chmod(path, wanted)
        change = f"set the mode of {path} to {wanted & 0o666:04o}"
    return change


# --------------------------------------------------------------------------- tmux


@dataclass(frozen=True)
class Client:
    """One attached tmux client, as the server reports it."""

    name: str
    pid: int
    uid: int
    user: str
    read_only: bool
    created: int
    session: str

    @property
    def mode(self) -> Mode:
        """``read-only`` or ``read-write``."""
        return READ_ONLY if self.read_only else READ_WRITE


@dataclass
class Result:
    """What one tmux command returned."""

    returncode: int
    stdout: list[str]
    stderr: list[str]

    @property
    def ok(self) -> bool:
        """Exit 0 and nothing on stderr (tmux reports some errors with exit 0)."""
        return self.returncode == 0 and not self.stderr


class HostServer:
    """The host's tmux server for one session, driven through libtmux."""

    def __init__(self, binary: str, socket: str) -> None:
        self.socket = socket
        self._server = libtmux.Server(socket_path=socket, tmux_bin=binary)

    def run(self, *args: str) -> Result:
        """Run one tmux command against this server."""
        result = self._server.cmd(*args)
        return Result(result.returncode, list(result.stdout), list(result.stderr))

    def check(self, *args: str) -> list[str]:
        """Run one tmux command; raise :class:`HostError` if it fails."""
        result = self.run(*args)
        if not result.ok:
            raise HostError(f"tmux {' '.join(args)}: {' '.join(result.stderr) or 'failed'}")
        return result.stdout

    def pid(self) -> int | None:
        """The server's pid, or ``None`` if no server answers."""
        result = self.run("display-message", "-p", "#{pid}")
        text = result.stdout[0].strip() if result.ok and result.stdout else ""
        return int(text) if text.isdigit() else None

    def clients(self) -> list[Client]:
        """The attached clients."""
        result = self.run("list-clients", "-F", _CLIENT_FORMAT)
        found: list[Client] = []
        for line in result.stdout if result.returncode == 0 else []:
            parts = line.split("\t")
            if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
                continue
            uid = int(parts[2])
            created = int(parts[4]) if parts[4].isdigit() else 0
            found.append(
                Client(
                    parts[0], int(parts[1]), uid, user_name(uid), parts[3] == "1", created, parts[5]
                )
            )
        return found

    def acl(self) -> dict[str, Mode]:
        """``server-access -l``: user -> mode (the owner is listed too)."""
        access: dict[str, Mode] = {}
        for line in self.check("server-access", "-l"):
            user, _, flag = line.strip().rpartition(" ")
            if user:
                access[user] = READ_WRITE if flag == "(W)" else READ_ONLY
        return access

    def option(self, name: str) -> str | None:
        """A global user option, or ``None`` if unset."""
        result = self.run("show-options", "-gqv", name)
        if result.returncode != 0 or not result.stdout:
            return None
        return result.stdout[0]

    def options(self, prefix: str) -> dict[str, str] | None:
        """All global user options starting with ``prefix``; ``None`` if the server is gone."""
        result = self.run("show-options", "-g")
        if result.returncode != 0:
            return None
        found: dict[str, str] = {}
        for line in result.stdout:
            key, _, value = line.partition(" ")
            if key.startswith(prefix):
                found[key] = _unquote(value)
        return found

    def set_option(self, name: str, value: str) -> None:
        """Set a global (user) option."""
        self.check("set-option", "-g", name, value)

    def unset_option(self, name: str) -> None:
        """Unset a global user option (no error if it is not set)."""
        self.run("set-option", "-gu", name)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def tmux_version(binary: str) -> tuple[int, int]:
    """``tmux -V`` as ``(major, minor)``; ``(0, 0)`` if it cannot be read."""
    try:
        out = subprocess.run(
            [binary, "-V"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = re.search(r"(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def client_key(name: str) -> str:
    """A tmux option suffix for a client name (``/dev/pts/3`` -> ``dev-pts-3``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def guard_binding(key: str, command: str) -> list[str]:
    """The tmux argv that binds ``key`` to ``command`` for read-write clients only.

    A read-only client's key binding runs only if every command in it is one
    tmux allows read-only clients; ``if-shell`` is not, so the whole binding
    is refused for them ("Client is read-only") and runs for everyone else.
    """
    return ["bind-key", "-T", "prefix", key, "if-shell", "-F", "#{client_readonly}", "", command]


def hook_command(ctl: list[str], kind: str, policy_path: str, session: str) -> str:
    """The ``run-shell`` a hook runs: fixed, validated words and ``#{q:hook_client}``."""
    words = [*ctl, "_hook", kind, "--policy", policy_path, session]
    for word in words:
        if not (SAFE_PATH.match(word) or re.match(r"^[A-Za-z0-9_-]{1,64}$", word)):
            raise HostError(f"cannot put {word!r} into a tmux hook: use a simpler path")
    shell = " ".join(words) + " #{q:hook_client} </dev/null >/dev/null 2>&1"
    return f"run-shell -b '{shell}'"


def ctl_command() -> list[str]:
    """How tmux (running as the host) runs this gatekeeperctl: absolute paths only."""
    sibling = os.path.join(os.path.dirname(sys.executable), "gatekeeperctl")
    if os.access(sibling, os.X_OK) and SAFE_PATH.match(sibling):
        return [sibling]
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "gatekeeperctl" and os.access(argv0, os.X_OK):
        return [argv0]
    return [sys.executable, "-I", "-m", "gatekeeper.cli.main"]


@contextlib.contextmanager
def locked(directory: str) -> Iterator[None]:
    """Serialise hook handlers of one server (tmux may fire ``client-attached`` twice)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- audit


def emit(policy: Policy, event: str, **fields: Any) -> str | None:
    """Write one host-side record (``share``/``join``/``leave``/``kick``/``revoke``).

    Returns ``None`` on success, else why it failed. Field names are those of
    :data:`gatekeeper.login.audit.FIELDS`; ``message_id`` is fixed per event type.
    """
    record: dict[str, Any] = {
        "event": event,
        "decision": "allow",
        "message_id": audit.MESSAGE_IDS[event],
    }
    record.update({k: v for k, v in fields.items() if v is not None})
    unknown = set(record) - audit.FIELD_NAMES
    if unknown:
        raise ValueError(f"not audit fields: {sorted(unknown)}")
    try:
        audit.emit(policy.audit, record)
    except audit.AuditError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class ConnectInfo:
    """What the gatekeeper's connect record says about a tmux client."""

    person: str | None
    connection_id: str | None
    client_addr: str | None = None


_FILE_TAIL: Final = 4 * 1024 * 1024
_JOURNAL_SOCKET: Final = re.compile(r"^/run/systemd/journal\.([A-Za-z0-9_.-]+)/socket$")


def connect_record(policy: Policy, client_pid: int, uid: int) -> ConnectInfo | None:
    """The gatekeeper's ``connect`` record for the process that became this client.

    Best effort: the host may not be allowed to read the journal. Only a
    record journald itself stamped with ``_PID`` = the client's pid and
    ``_UID`` = its uid is believed (anyone can send gatekeeper-tagged
    records, SECURITY.md §24; only the gatekeeper ran as that pid before it
    exec'd tmux).
    """
    config = policy.audit
    candidates: list[dict[str, Any]] = []
    if config.sink == "journald":
        argv = ["journalctl", "--no-pager", "-o", "json", "-q"]
        match = _JOURNAL_SOCKET.match(config.journal_socket)
        if match:
            argv.append(f"--namespace={match.group(1)}")
        argv += [
            f"SYSLOG_IDENTIFIER={config.identifier}",
            "GATEKEEPER_EVENT=connect",
            f"_PID={client_pid}",
            f"_UID={uid}",
        ]
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, check=False, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        for line in out.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if entry.get("_PID") == str(client_pid) and entry.get("_UID") == str(uid):
                    candidates.append(json.loads(entry["MESSAGE"]))
    else:
        # The file sink has no kernel-stamped sender: attribution is weaker there.
        # Only its tail is read (the record was written moments before the attach).
        with contextlib.suppress(OSError), open(config.file, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - _FILE_TAIL))
            for line in handle.read().decode("ascii", errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    candidates.append(json.loads(line))
    for record in reversed(candidates):
        if (
            isinstance(record, dict)
            and record.get("event") == "connect"
            and record.get("decision") == "allow"
            and record.get("pid") == client_pid
            and record.get("uid") == uid
        ):
            person = record.get("person")
            conn = record.get("connection_id")
            addr = record.get("client_addr")
            return ConnectInfo(
                person if isinstance(person, str) else None,
                conn if isinstance(conn, str) else None,
                addr if isinstance(addr, str) else None,
            )
    return None


# --------------------------------------------------------------------------- hooks


def note_error(policy: Policy, name: str, text: str) -> None:
    """Remember a hook or watcher failure on the server; ``share`` reports it."""
    session = policy.sessions.get(name)
    if session is None:
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with contextlib.suppress(HostError, OSError):
        HostServer(policy.tmux_binary, session.socket).set_option(OPT_ERROR, f"{stamp} {text}")


def _remember(server: HostServer, client: Client) -> bool:
    """Store ``client``'s join state unless it is there; the caller holds :func:`locked`."""
    key = _JOIN_PREFIX + client_key(client.name)
    previous = server.option(key)
    if previous is not None and previous.split(" ")[0] == str(client.pid):
        return False  # tmux fires client-attached twice for one attach
    # tmux's own attach time (whole seconds); the hook itself runs a little later.
    joined = float(client.created) if 0 < client.created <= time.time() else time.time()
    server.set_option(key, f"{client.pid} {client.uid} {client.mode} {joined:.3f}")
    return True


def emit_join(
    policy: Policy, name: str, client: Client, recordings: list[str] | None = None
) -> ConnectInfo | None:
    """Write the ``join`` record of ``client`` (with its recordings); return its connect info."""
    info = connect_record(policy, client.pid, client.uid)
    problem = emit(
        policy,
        "join",
        user=client.user,
        uid=client.uid,
        session=name,
        mode=client.mode,
        tty=client.name,
        client_pid=client.pid,
        pid=client.pid,
        person=info.person if info else None,
        connection_id=info.connection_id if info else None,
        recordings=recordings,
    )
    if problem:
        note_error(policy, name, f"join record of {client.user} not written: {problem}")
    return info


def on_join(policy: Policy, name: str, client_name: str) -> None:
    """``client-attached``: remember the client and write a ``join`` record."""
    session = policy.sessions[name]
    server = HostServer(policy.tmux_binary, session.socket)
    owner_uid = os.getuid()
    with locked(os.path.dirname(session.socket)):
        client = next((c for c in server.clients() if c.name == client_name), None)
        if client is None or client.uid in (owner_uid, 0):
            return
        fresh = _remember(server, client)
    if fresh:
        from gatekeeper.host import visits  # noqa: PLC0415 - visits imports this module

        visits.joined(policy, session, server, client)


@dataclass
class Joined:
    """A joined guest client, as ``on_join`` remembered it."""

    name: str
    pid: int
    uid: int
    mode: Mode
    joined: float

    @classmethod
    def parse(cls, name: str, value: str) -> Joined | None:
        """Parse ``PID UID MODE TIME``."""
        parts = value.split(" ")
        if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        mode: Mode = READ_WRITE if parts[2] == READ_WRITE else READ_ONLY
        try:
            joined = float(parts[3])
        except ValueError:
            return None
        return cls(name, int(parts[0]), int(parts[1]), mode, joined)


def emit_leave(
    policy: Policy, name: str, joined: Joined, ended: str, recordings: list[str] | None = None
) -> None:
    """Write the ``leave`` record of one client."""
    problem = emit(
        policy,
        "leave",
        user=user_name(joined.uid),
        uid=joined.uid,
        session=name,
        mode=joined.mode,
        tty=joined.name,
        client_pid=joined.pid,
        pid=joined.pid,
        duration_seconds=round(max(0.0, time.time() - joined.joined), 3),
        ended=ended,
        recordings=recordings,
    )
    if problem and ended != "server-exit":
        note_error(policy, name, f"leave record of uid {joined.uid} not written: {problem}")


def on_leave(policy: Policy, name: str, client_name: str) -> None:
    """``client-detached``: write a ``leave`` record with duration and how it ended."""
    session = policy.sessions[name]
    server = HostServer(policy.tmux_binary, session.socket)
    key = client_key(client_name)
    with locked(os.path.dirname(session.socket)):
        value = server.option(_JOIN_PREFIX + key)
        ended = server.option(_END_PREFIX + key) or "detached"
        server.unset_option(_JOIN_PREFIX + key)
        server.unset_option(_END_PREFIX + key)
    joined = Joined.parse(client_name, value) if value else None
    if joined is not None:
        from gatekeeper.host import visits  # noqa: PLC0415 - visits imports this module

        ended = ended if ended in ("kicked", "expired", "recording-failed") else "detached"
        files = visits.left(policy, session, server, joined, ended)
        emit_leave(policy, name, joined, ended, files)


def joined_clients(server: HostServer) -> list[Joined] | None:
    """The guests ``on_join`` remembered and ``on_leave`` has not yet seen leave."""
    options = server.options(_JOIN_PREFIX)
    if options is None:
        return None
    found: list[Joined] = []
    for option, value in options.items():
        joined = Joined.parse(option.removeprefix(_JOIN_PREFIX), value)
        if joined is not None:
            found.append(joined)
    return found


# --------------------------------------------------------------------------- revoke


def revoke(policy: Policy, name: str, server: HostServer, user: str, ended: str) -> list[Client]:
    """Detach ``user``'s clients and remove their grant; return the clients detached.

    The end reason is stored first, so the ``leave`` hook records it. A
    client detached before its (asynchronous) join hook ran gets its ``join``
    record here, so every ``leave`` has one. ``server-access -d`` both
    removes the grant and detaches the clients; ``detach-client`` covers
    clients the ACL does not know (never the host: callers refuse the owner).
    """
    uid = uid_of(user)
    victims = [c for c in server.clients() if c.user == user or c.uid == uid]
    fresh: list[Client] = []
    with locked(os.path.dirname(server.socket)):
        for client in victims:
            if _remember(server, client):
                fresh.append(client)
            server.set_option(_END_PREFIX + client_key(client.name), ended)
    for client in fresh:
        emit_join(policy, name, client)
    if user in server.acl():
        server.check("server-access", "-d", user)
    for client in victims:
        server.run("detach-client", "-t", client.name)
    return victims


def set_access(server: HostServer, user: str, mode: Mode, *, new: bool) -> None:
    """Grant or change ``user``'s ``server-access``, keeping read-only clients read-only.

    ``server-access -w`` clears the read-only flag of every attached client of
    that user (tmux 3.3a-3.5a), including one the gatekeeper attached with
    ``-r`` (``watch``, or an older read-only grant). Those are switched back
    at once (``switch-client -r`` toggles the flag).
    """
    flag = "r" if mode == READ_ONLY else "w"
    keep = {c.name for c in server.clients() if c.user == user and c.read_only}
    server.check("server-access", f"-a{flag}" if new else f"-{flag}", user)
    if mode == READ_WRITE and keep:
        for client in server.clients():
            if client.name in keep and not client.read_only:
                server.run("switch-client", "-c", client.name, "-r")
        for client in server.clients():
            if client.name in keep and not client.read_only:
                # Never leave it writable: detach it (the guest may reattach).
                server.run("detach-client", "-t", client.name)


def kicked(server: HostServer) -> set[str]:
    """Users ``kick`` removed; the watcher does not give them access back."""
    return set((server.option(OPT_KICKED) or "").split())


# --------------------------------------------------------------------------- watcher


@dataclass
class Watch:
    """State of the watcher of one shared session."""

    policy: Policy
    name: str
    host_uid: int
    gid: int
    server: HostServer
    server_pid: int
    pending: list[datetime] = field(default_factory=list)
    snapshot: list[Joined] = field(default_factory=list)


def watch(policy: Policy, name: str, gid: int, tick: float = 0.5) -> int:
    """Run until the server exits: repair the socket, apply grant changes on time.

    At each ``expires``/``not_before`` instant the access each guest should
    have is recomputed: a guest who loses it is detached and removed
    (``revoke`` record, ``leave`` with ``ended = expired``); a mode change is
    applied with ``server-access -r``/``-w``. When the server exits, guests
    still attached get a ``leave`` with ``ended = server-exit``.
    """
    session = policy.sessions[name]
    server = HostServer(policy.tmux_binary, session.socket)
    server_pid = server.pid()
    if server_pid is None:
        return EX_UNAVAILABLE
    state = Watch(policy, name, os.getuid(), gid, server, server_pid)
    state.pending = boundaries(policy, name, datetime.now(UTC))
    while _alive(server_pid):
        if not os.path.lexists(session.socket):
            # Removed by accident: SIGUSR1 makes tmux create it again (then repaired).
            with contextlib.suppress(OSError):
                os.kill(server_pid, signal.SIGUSR1)
        repair_socket(session.socket, state.host_uid, gid)
        now = datetime.now(UTC)
        while state.pending and state.pending[0] <= now:
            _apply_boundary(state, state.pending.pop(0))
        _check_recording(policy, session, server)
        snapshot = joined_clients(server)
        if snapshot is not None and snapshot != state.snapshot:
            state.snapshot = snapshot
            # Observable for tests and curious hosts: whom a server exit would end.
            server.run("set-option", "-g", OPT_WATCHING, " ".join(str(j.pid) for j in snapshot))
        delay = tick
        if state.pending:
            delay = min(delay, max(0.0, (state.pending[0] - now).total_seconds()))
        time.sleep(delay)  # a timer, not synchronisation
    for joined in state.snapshot:
        emit_leave(policy, name, joined, "server-exit")
    return 0


def _check_recording(policy: Policy, session: Session, server: HostServer) -> None:
    from gatekeeper.host import recording  # noqa: PLC0415 - recording imports this module

    recording.check_pipes(policy, session, server)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _apply_boundary(state: Watch, at: datetime) -> None:
    before = access_at(state.policy, state.name, datetime.fromtimestamp(at.timestamp() - 1e-3, UTC))
    after = access_at(state.policy, state.name, at)
    skip = kicked(state.server)
    host = user_name(state.host_uid)
    for user in sorted(set(before) | set(after)):
        old, new = before.get(user), after.get(user)
        if old == new or user in skip:
            continue
        if new is None:
            detached = revoke(state.policy, state.name, state.server, user, "expired")
            emit(
                state.policy,
                "revoke",
                user=user,
                uid=uid_of(user),
                session=state.name,
                mode=old,
                by=host,
                reason="expired",
                detail=f"grant ended at {at.isoformat()}; {len(detached)} client(s) detached",
                pid=os.getpid(),
            )
        else:
            with contextlib.suppress(HostError):
                set_access(state.server, user, new, new=old is None)
