"""``gatekeeperctl demo``: a throwaway, self-contained demo on loopback.

Everything the real deployment has, made up on the spot and removed again:

* two throwaway accounts (a host and a read-only guest) with ``/bin/sh`` and
  root-owned homes, and a group for the session socket;
* a private systemd-journald namespace for the audit records;
* the host's tmux session with a live clock in it, shared by running
  ``gatekeeperctl share`` as the host (its own server, socket 0660 in the group,
  ``server-access -ar GUEST``, join/leave audit hooks);
* a root-owned policy, a guest key in a root-owned ``AuthorizedKeysFile``;
* a private sshd on 127.0.0.1 whose only drop-in is the output of
  ``gatekeeperctl sshd-config``.

It prints the ``ssh`` line to join read-only, one forbidden attempt and where
the audit records are, then waits; Ctrl-C (or ``demo --stop`` after
``demo --background``) tears everything down: processes by pid, accounts,
journal files and the demo directory. The state lives in ``DIR/state.json``
so that a second invocation can find and remove a demo.

Root is required: the gatekeeper believes only a root-owned policy
(:func:`gatekeeper.login.fsafety.read_trusted`), and the demo does not weaken that.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from gatekeeper.deploy import sshdconfig
from gatekeeper.exitcodes import EX_NOPERM
from gatekeeper.host import control as hostlib
from gatekeeper.testing import accounts, procs
from gatekeeper.testing import journal as journald
from gatekeeper.testing import sshd as harness_sshd
from gatekeeper.testing.poll import WaitTimeoutError, wait_until

DEFAULT_DIR: Final = "/run/gatekeeper-demo"
SSHD: Final = harness_sshd.SSHD
JOURNALD: Final = journald.JOURNALD
TMUX: Final = "/usr/bin/tmux"
ALIAS: Final = "gk-demo"
_CLEAN_ENV: Final = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}

#: The host's pane: a live clock, so a guest sees the session move.
CLOCK: Final = (
    "while :; do printf '\\033[H\\033[J'; "
    "echo 'ssh-gatekeeper demo: this is the host'\"'\"'s tmux session.'; "
    "echo 'Guests watch it read-only: their keys never reach this pane.'; "
    "echo; date '+%H:%M:%S'; sleep 1; done"
)


class DemoError(Exception):
    """The demo cannot start; ``str(error)`` says why and what to do."""


def wait_for(probe: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``probe`` until true; raise :class:`DemoError` after ``timeout`` seconds."""
    try:
        wait_until(probe, timeout, what)
    except WaitTimeoutError as error:
        raise DemoError(str(error)) from None


@dataclass
class State:
    """Everything the demo created, written as soon as it exists (for ``--stop``)."""

    dir: str
    tag: str
    group: str = ""
    users: list[str] = field(default_factory=list)
    namespace: str = ""
    journald_pid: int = 0
    keepalive_pid: int = 0
    sshd_pid: int = 0
    port: int = 0
    socket: str = ""
    gatekeeper: str = ""

    @property
    def path(self) -> Path:
        """``DIR/state.json``."""
        return Path(self.dir) / "state.json"

    def save(self) -> None:
        """Write the state atomically, root-only."""
        tmp = Path(self.dir) / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.chmod(0o600)
        tmp.replace(self.path)

    @classmethod
    def load(cls, directory: str) -> State:
        """Read ``DIR/state.json``."""
        return cls(**json.loads((Path(directory) / "state.json").read_text()))


# --------------------------------------------------------------------------- set-up


def _as(user: str, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    account = accounts.lookup(user)
    env = {**_CLEAN_ENV, "HOME": account.home, "TERM": "xterm-256color"}
    return accounts.run_as(account, argv, env, cwd="/", timeout=60, check=True)


def _default_gatekeeper() -> str:
    beside = Path(sys.executable).parent / "gatekeeper"
    return str(beside) if beside.exists() else sshdconfig.DEFAULT_GATEKEEPER


_write = accounts.write_root_file


def _accounts(state: State, root: Path) -> tuple[str, str]:
    group = f"gkdemo-{state.tag}"
    host, guest = f"gkdemo-host-{state.tag}", f"gkdemo-guest-{state.tag}"
    for name in (group, host, guest):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            raise DemoError(f"account {name} already exists")
    try:
        accounts.create_group(group, replace=False)
        state.group = group
        state.save()
        (root / "home").mkdir(mode=0o755)
        for name, groups in ((host, ()), (guest, (group,))):
            state.users.append(name)
            state.save()
            # Root-owned home: the guest can plant nothing (SECURITY.md §1.4).
            accounts.create_account(name, groups, home=root / "home" / name, replace=False)
    except accounts.AccountExistsError as error:
        raise DemoError(str(error)) from None
    return host, guest


def _journald(state: State) -> str:
    state.namespace = f"gkdemo{state.tag}"
    state.save()
    try:
        process = journald.spawn(state.namespace, new_session=True, env=_CLEAN_ENV)
    except WaitTimeoutError as error:
        raise DemoError(str(error)) from None
    state.journald_pid = process.pid
    state.save()
    # The demo outlives this process (--background): a sleeping process holds the
    # stream that keeps the namespace's journald alive (see gatekeeper.testing.journal).
    with journald.open_stream(state.namespace) as stream:
        keepalive = subprocess.Popen(
            ["sleep", "infinity"],
            stdin=subprocess.DEVNULL,
            stdout=stream.fileno(),
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=_CLEAN_ENV,
        )
    state.keepalive_pid = keepalive.pid
    state.save()
    return journald.socket_path(state.namespace)


def _tmux(state: State, root: Path, host: str) -> str:
    """The host's socket directory: 2750, the host's, in the demo group (§3.20)."""
    directory = root / "tmux"
    directory.mkdir(mode=0o750)
    gid = grp.getgrnam(state.group).gr_gid
    os.chown(directory, pwd.getpwnam(host).pw_uid, gid)
    directory.chmod(0o2750)  # no group member can replace the socket; setgid: its group
    state.socket = str(directory / "shared.sock")
    state.save()
    return state.socket


def _share(state: State, host: str, policy: Path) -> None:
    """Share the session the way a host would: ``gatekeeperctl share``, then a live clock.

    ``share`` starts the session on its own server, sets the socket's group and mode,
    grants ``server-access -ar`` to the guest and installs the join/leave audit hooks,
    so the demo's audit trail shows whole visits (``gatekeeperctl audit --sessions``).
    """
    _as(host, [*hostlib.ctl_command(), "share", "shared", "--policy", str(policy)])
    _as(host, [TMUX, "-S", state.socket, "respawn-pane", "-k", "-t", "=shared:", CLOCK])


def _sshd(state: State, root: Path, policy: Path, gatekeeper: str) -> None:
    host_key = harness_sshd.keygen(root / "ssh_host_ed25519_key")
    text = sshdconfig.render(
        [f"gkdemo-guest-{state.tag}"],
        sshdconfig.force_command(gatekeeper, str(policy)),
        str(policy),
    )
    confd = root / "sshd_config.d"
    confd.mkdir(mode=0o755)
    _write(confd / "10-gatekeeper.conf", text)
    body = harness_sshd.loopback_config(
        include=confd, host_key=host_key, authorized_keys=root / "authorized_keys"
    )
    config = _write(
        root / "sshd_config", "# gatekeeperctl demo: a private sshd on loopback\n" + body
    )
    try:
        listener = harness_sshd.start(config, root / "sshd.log", new_session=True, env=_CLEAN_ENV)
    except (harness_sshd.SshdError, WaitTimeoutError) as error:
        raise DemoError(f"{error} (see {root / 'sshd.log'})") from None
    state.sshd_pid, state.port = listener.process.pid, listener.port
    state.save()


def _client_files(state: State, root: Path, guest: str) -> None:
    key = root / "guest_key"
    harness_sshd.keygen(key, f"demo guest {guest}")
    keys = root / "authorized_keys"
    keys.mkdir(mode=0o755)
    # Root-owned AuthorizedKeysFile: the guest cannot add keys (corpus ENV-16).
    _write(keys / guest, Path(f"{key}.pub").read_text())
    host_key = root / "ssh_host_ed25519_key"
    _write(root / "known_hosts", harness_sshd.known_hosts_line(ALIAS, host_key))
    _write(
        root / "ssh_config",
        f"Host {ALIAS}\n"
        "    HostName 127.0.0.1\n"
        f"    Port {state.port}\n"
        f"    User {guest}\n"
        f"    IdentityFile {key}\n"
        "    IdentitiesOnly yes\n"
        "    IdentityAgent none\n"
        f"    HostKeyAlias {ALIAS}\n"
        f"    UserKnownHostsFile {root}/known_hosts\n"
        "    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n",
    )


def _policy(root: Path, journal_socket: str, host: str, guest: str, sock: str) -> Path:
    return _write(
        root / "gatekeeper.toml",
        f"""\
# gatekeeperctl demo policy: {guest} may watch {host}'s session read-only.
version = 1

[audit]
journal_socket = "{journal_socket}"

[sessions.shared]
socket = "{sock}"
owner = "{host}"
target = "shared"

[[grant]]
users = ["{guest}"]
session = "shared"
mode = "read-only"
default = true
""",
    )


def start(directory: str, gatekeeper: str) -> State:
    """Set the whole demo up; on any failure, remove what was made and raise."""
    for tool in (SSHD, JOURNALD, TMUX):
        if not os.access(tool, os.X_OK):
            raise DemoError(f"{tool} is missing (run scripts/bootstrap)")
    for name in ("useradd", "ssh-keygen"):
        if shutil.which(name, path=_CLEAN_ENV["PATH"]) is None:
            raise DemoError(f"{name} is missing (run scripts/bootstrap)")
    if not os.access(gatekeeper, os.X_OK):
        raise DemoError(f"{gatekeeper} is missing (run scripts/bootstrap, or pass --gatekeeper)")
    root = Path(directory)
    if (root / "state.json").exists():
        raise DemoError(f"a demo is already set up in {root}: gatekeeperctl demo --stop")
    if root.exists():  # never adopt (or later delete) a directory the demo did not make
        raise DemoError(f"{root} exists but holds no demo: remove it, or pick another --dir")
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    state = State(dir=str(root), tag=secrets.token_hex(2), gatekeeper=gatekeeper)
    state.save()
    try:
        host, guest = _accounts(state, root)
        journal_socket = _journald(state)
        sock = _tmux(state, root, host)
        policy = _policy(root, journal_socket, host, guest, sock)
        _share(state, host, policy)
        _sshd(state, root, policy, gatekeeper)
        _client_files(state, root, guest)
    except BaseException:
        stop(state)
        raise
    return state


# --------------------------------------------------------------------------- tear-down


def _succeeds(argv: list[str]) -> bool:
    try:
        result = subprocess.run(argv, capture_output=True, env=_CLEAN_ENV, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def stop(state: State) -> list[str]:
    """Remove everything in ``state``, tolerating half-made demos; return what failed."""
    problems: list[str] = []
    uids: set[int] = set()
    for name in state.users:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    victims: list[int] = []
    config = str(Path(state.dir) / "sshd_config")
    if state.sshd_pid and config in procs.cmdline(state.sshd_pid):
        victims.append(state.sshd_pid)
        victims += procs.children(state.sshd_pid)
    victims += [p for p in procs.pids() if procs.uid(p) in uids]  # the accounts' processes
    namespace = state.namespace
    if state.journald_pid and namespace and namespace in procs.cmdline(state.journald_pid):
        victims.append(state.journald_pid)
    if state.keepalive_pid and procs.cmdline(state.keepalive_pid).startswith("sleep infinity"):
        victims.append(state.keepalive_pid)
    procs.terminate(sorted(set(victims)))
    for name in state.users:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            if not _succeeds(["userdel", name]):
                problems.append(f"userdel {name} failed")
    if state.group:
        with contextlib.suppress(KeyError):
            grp.getgrnam(state.group)
            if not _succeeds(["groupdel", state.group]):
                problems.append(f"groupdel {state.group} failed")
    if state.namespace:
        journald.remove_files(state.namespace)
    shutil.rmtree(state.dir, ignore_errors=True)
    return problems


# --------------------------------------------------------------------------- the command


def instructions(state: State) -> str:
    """What to type: join, a forbidden attempt, the audit records, how to stop."""
    root = state.dir
    ssh = f"ssh -F {root}/ssh_config"
    guest = state.users[1] if len(state.users) > 1 else "?"
    return f"""\
ssh-gatekeeper demo is running: a private sshd on 127.0.0.1:{state.port}, a host
session with a live clock, and the throwaway guest account {guest}.

  Join the host's session read-only (leave with Ctrl-b d):
    {ssh} -t {ALIAS}
  ({root}/ssh_config holds the port, the guest's key and the pinned host key;
   with no command, the guest's default grant applies: `attach shared`.)

  Try something forbidden - a shell, then a port forwarding:
    {ssh} {ALIAS} bash
    {ssh} -N -L 127.0.0.1:8022:127.0.0.1:22 {ALIAS}

  What the guest may use, and who it is:
    {ssh} {ALIAS} list
    {ssh} {ALIAS} whoami

  The audit records (one JSON object per connection), and whole visits
  (connect + join + leave: who, from where, mode, how long, how it ended):
    journalctl --namespace={state.namespace} -t gatekeeper -o cat
    gatekeeperctl audit --policy {root}/gatekeeper.toml --launcher {state.gatekeeper} --sessions

  The policy and the generated sshd block:
    {root}/gatekeeper.toml
    {root}/sshd_config.d/10-gatekeeper.conf
"""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _wait(state: State, run_for: float | None) -> int:
    deadline = None if run_for is None else time.monotonic() + run_for
    while deadline is None or time.monotonic() < deadline:
        if not procs.alive(state.sshd_pid):
            print("gatekeeperctl demo: sshd exited; tearing down", file=sys.stderr)
            return 1
        time.sleep(0.2)  # polling interval while the demo runs
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    directory = os.path.abspath(args.dir)
    if args.stop:
        try:
            state = State.load(directory)
        except FileNotFoundError:
            print(f"gatekeeperctl demo: no demo in {directory}", file=sys.stderr)
            return 1
        problems = stop(state)
        for problem in problems:
            print(f"gatekeeperctl demo: {problem}", file=sys.stderr)
        print("gatekeeperctl demo: stopped, everything removed")
        return 1 if problems else 0
    if os.geteuid() != 0:
        print(
            "gatekeeperctl demo: needs root - it creates throwaway accounts, and the "
            "gatekeeper trusts only a root-owned policy. Run: sudo make demo",
            file=sys.stderr,
        )
        return EX_NOPERM
    with _terminate_as_interrupt():
        try:
            state = start(directory, args.gatekeeper or _default_gatekeeper())
        except (DemoError, sshdconfig.ConfigError, OSError, subprocess.SubprocessError) as error:
            print(f"gatekeeperctl demo: {error}", file=sys.stderr)
            return 1
        print(instructions(state), flush=True)
        if args.background:
            print(f"Stop it with: gatekeeperctl demo --stop --dir {directory}", flush=True)
            return 0
        code = 0
        try:
            print("Press Ctrl-C to stop the demo and remove everything.", flush=True)
            code = _wait(state, args.run_for)
        except KeyboardInterrupt:
            code = 0  # Ctrl-C is how the demo is meant to end
        finally:
            problems = stop(state)
            for problem in problems:
                print(f"gatekeeperctl demo: {problem}", file=sys.stderr)
        print("\ngatekeeperctl demo: stopped, everything removed", flush=True)
        return 1 if problems else code


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run a throwaway demo on loopback",
        description="Set up a throwaway demo (accounts, journald, a shared tmux session, "
        "a private sshd on 127.0.0.1 with the generated config), print the ssh lines to "
        "try, and remove everything on Ctrl-C. Needs root.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--run-for", type=float, metavar="SECONDS", help="tear down after SECONDS")
    mode.add_argument(
        "--background", action="store_true", help="set up and return; stop with --stop"
    )
    mode.add_argument("--stop", action="store_true", help="tear down a --background demo")
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"the demo's directory (default: {DEFAULT_DIR})"
    )
    parser.add_argument(
        "--gatekeeper",
        metavar="PATH",
        default=None,
        help="the gatekeeper launcher (default: the one installed beside gatekeeperctl)",
    )
    parser.set_defaults(handler=_run_demo)
