"""A real sshd on 127.0.0.1 for the end-to-end tier (and the ssh client that talks to it).

Built on :mod:`gatekeeper.testing.sshd` (shared with ``gatekeeperctl demo`` and
``bench/run``); this module keeps the names the tests use.

Everything is real: OpenSSH's ``sshd`` run as root in the foreground (``-D -e``)
on a free loopback port, host keys made with ``ssh-keygen``, a root-owned
``AuthorizedKeysFile`` per account, and the ``ssh``/``sftp``/``scp`` clients.

The configuration mirrors a Debian install: ``sshd_config`` starts with an
``Include`` of a drop-in directory (where ``gatekeeperctl sshd-config`` output
goes) and keeps Debian's risky globals (``X11Forwarding yes``, ``AcceptEnv
LANG LC_*``), so a test proves the generated Match block overrides them. Two
deliberate differences from a production box: ``UsePAM no`` (no PAM stack for
throwaway accounts) and files under ``/run`` (``StrictModes`` rejects an
``AuthorizedKeysFile`` under the world-writable ``/tmp``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gktest

from gatekeeper.testing import procs
from gatekeeper.testing import sshd as harness
from gatekeeper.testing.sshd import DEBIAN_GLOBALS, SSHD, fingerprint, free_port

__all__ = [
    "DEBIAN_GLOBALS",
    "SSHD",
    "Key",
    "Site",
    "Sshd",
    "Terminal",
    "client_env",
    "fingerprint",
    "free_port",
    "site",
    "sshd_config",
    "terminal",
    "version_specific_globals",
]


def version_specific_globals(root: Path) -> str:
    """Lines only newer sshds know (see :func:`gatekeeper.testing.sshd.version_globals`)."""
    return harness.version_globals(root / "ssh_host_ed25519_key")


@dataclass(frozen=True)
class Key:
    """A client key pair, root-owned 0600 (root runs the ssh client)."""

    path: Path
    fingerprint: str

    @property
    def public(self) -> str:
        return Path(f"{self.path}.pub").read_text().strip()


@dataclass
class Sshd:
    """One running sshd and how to reach it."""

    site: Site
    name: str
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def ssh_argv(
        self, key: Key, user: str, *options: str, command: Sequence[str] = ()
    ) -> list[str]:
        """``ssh`` with no user config, agent or known_hosts of root's involved."""
        return [
            "ssh",
            *self.site.client_options(key, self.port),
            *options,
            f"{user}@127.0.0.1",
            *command,
        ]

    def ssh(
        self,
        key: Key,
        user: str,
        *options: str,
        command: Sequence[str] = (),
        timeout: float = 30,
        stdin: bytes | None = b"",
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.ssh_argv(key, user, "-o", "LogLevel=ERROR", *options, command=command),
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=client_env(),
        )

    def children(self) -> list[int]:
        """Pids of sshd's per-connection processes (direct children of the listener)."""
        return procs.children(self.process.pid)

    def stop(self) -> None:
        pids = self.children()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def client_env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(Path("~root").expanduser()),
        "LANG": "C.UTF-8",
        "TERM": "xterm",
    }


@dataclass
class Site:
    """A root-owned directory under /run holding host key, client keys and configs."""

    root: Path
    host_key: Path
    extra_globals: str = ""
    sshds: list[Sshd] = field(default_factory=list)
    #: the accounts given keys here (their ExposeAuthInfo files are removed at the end).
    users: set[str] = field(default_factory=set)

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def client_options(self, key: Key, port: int) -> list[str]:
        return [
            "-F",
            "/dev/null",
            "-p",
            str(port),
            "-i",
            str(key.path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "HostKeyAlias=gk-e2e",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
        ]

    def key(self, name: str) -> Key:
        path = self.root / "keys" / name
        path.parent.mkdir(mode=0o700, exist_ok=True)
        harness.keygen(path, name)
        return Key(path, fingerprint(Path(f"{path}.pub")))

    def authorize(self, user: str, *keys: Key, options: str = "") -> None:
        """Root-owned ``authorized_keys/<user>`` (the guest cannot add keys, corpus ENV-16)."""
        self.users.add(user)
        lines = [f"{options} {k.public}".strip() for k in keys]
        gktest.write_root_file(self.root / "authorized_keys" / user, "\n".join(lines) + "\n")

    def write_config(self, name: str, dropin: str, globals_: str = DEBIAN_GLOBALS) -> Path:
        """Write ``NAME.conf`` (Debian-like, including ``NAME.d/``); check it with sshd -t."""
        confd = self.root / f"{name}.d"
        confd.mkdir(mode=0o755)
        gktest.write_root_file(confd / "10-gatekeeper.conf", dropin)
        config = gktest.write_root_file(
            self.root / f"{name}.conf",
            harness.loopback_config(
                include=confd,
                host_key=self.host_key,
                authorized_keys=self.root / "authorized_keys",
                globals_=globals_,
                extra=self.extra_globals,
            ),
        )
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, check=False)
        assert check.returncode == 0, check.stderr.decode(errors="replace")
        return config

    def start(self, name: str, dropin: str, globals_: str = DEBIAN_GLOBALS) -> Sshd:
        """Start ``sshd -D`` with ``dropin`` as its only ``sshd_config.d`` file."""
        config = self.write_config(name, dropin, globals_)
        log = self.root / f"{name}.log"
        log.write_bytes(b"")
        listener = harness.start(config, log)
        sshd = Sshd(self, name, listener.port, config, log, listener.process)
        self.sshds.append(sshd)
        return sshd

    def effective(self, sshd: Sshd, user: str) -> dict[str, list[str]]:
        """``sshd -T -C`` for ``user``: keyword -> values."""
        out = subprocess.run(
            [
                SSHD,
                "-T",
                "-f",
                str(sshd.config),
                "-C",
                f"user={user},host=localhost,addr=127.0.0.1",
            ],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        values: dict[str, list[str]] = {}
        for line in out.splitlines():
            keyword, _, value = line.partition(" ")
            values.setdefault(keyword, []).append(value)
        return values


@contextlib.contextmanager
def site() -> Iterator[Site]:
    """A fresh site; every sshd started in it is stopped and the directory removed."""
    gktest.require_root()
    gktest.require_tool(SSHD, "ssh", "ssh-keygen")
    root = Path(f"/run/gk-e2e-{secrets.token_hex(4)}")
    root.mkdir(mode=0o755)
    try:
        host_key = harness.keygen(root / "ssh_host_ed25519_key")
        (root / "authorized_keys").mkdir(mode=0o755)
        gktest.write_root_file(root / "known_hosts", harness.known_hosts_line("gk-e2e", host_key))
        made = Site(root, host_key, version_specific_globals(root))
        try:
            yield made
        finally:
            for sshd in made.sshds:
                sshd.stop()
            for user in made.users:
                with contextlib.suppress(KeyError):
                    gktest.remove_auth_info(pwd.getpwnam(user).pw_uid)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sshd_config(policy: Path, gatekeeper: Path | None = None) -> str:
    """The output of the real ``gatekeeperctl sshd-config`` for ``policy``."""
    argv = [str(gktest.GATEKEEPERCTL), "sshd-config", "--policy", str(policy)]
    argv += ["--gatekeeper", str(gatekeeper or gktest.GATEKEEPER)]
    result = subprocess.run(argv, capture_output=True, check=False, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Terminal:
    """Root's private tmux server: each window runs one ssh client on a real pty.

    capture-pane on it shows exactly what the guest would see.
    """

    tmux: gktest.Tmux

    def run(self, argv: Sequence[str], width: int = 100, height: int = 30) -> str:
        """Start ``argv`` in a new window; its exit status is printed when it ends."""
        import shlex  # noqa: PLC0415 - only here

        window = f"w{secrets.token_hex(3)}"
        env = " ".join(f"{k}={v}" for k, v in client_env().items())
        # The status is printed rather than read from #{pane_dead_status}: tmux may
        # mark a pane dead (pty EOF) before it has reaped the process.
        wrapped = shlex.join(["sh", "-c", '"$@"; echo "[exited $?]"', "sh", *argv])
        self.tmux.cmd("new-window", "-d", "-t", "term:", "-n", window, f"env -i {env} {wrapped}")
        self.tmux.cmd("resize-window", "-t", f"term:{window}", "-x", str(width), "-y", str(height))
        return f"term:{window}"

    def exit_status(self, target: str, timeout: float = 30.0) -> int:
        """The exit status of the window's command, once it has ended."""
        import re  # noqa: PLC0415 - only here

        pattern = re.compile(r"\[exited (\d+)\]")

        def ended() -> str | None:
            found = pattern.findall(self.tmux.capture(target))
            return found[-1] if found else None

        try:
            return int(gktest.wait_until(ended, timeout, f"{target} to exit"))
        except gktest.WaitTimeoutError as error:
            screen = self.tmux.capture(target)
            raise gktest.WaitTimeoutError(f"{error}; screen:\n{screen}") from None

    def close(self, target: str) -> None:
        self.tmux.cmd("kill-window", "-t", target, check=False)


@contextlib.contextmanager
def terminal(directory: Path) -> Iterator[Terminal]:
    gktest.require_tool("tmux")
    tmux = gktest.Tmux(str(directory / "terminal.sock"))
    tmux.cmd("-f", "/dev/null", "new-session", "-d", "-s", "term", "-x", "100", "-y", "30", "sh")
    tmux.cmd("set-option", "-g", "remain-on-exit", "on")
    try:
        yield Terminal(tmux)
    finally:
        tmux.kill()
