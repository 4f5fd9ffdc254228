"""A real OpenSSH sshd on 127.0.0.1: keys, a Debian-like config, start-up on a free port.

``sshd -D -e`` runs in the foreground, logging to a file; it is up when it has
logged ``Server listening on 127.0.0.1 port N`` for every port (read from the
log, never by connecting: a probe connection would show in the log and in the
audit trail). A port is free "a moment ago" only, so :func:`start` retries on
a fresh port when sshd loses that race.

The configuration mirrors a Debian install: an ``Include`` of a drop-in
directory first (where ``gatekeeperctl sshd-config`` output goes) and Debian's
risky globals (``X11Forwarding yes``, ``AcceptEnv LANG LC_*``), so what the
generated Match block overrides is tested. Two deliberate differences from a
production box: ``UsePAM no`` (no PAM stack for throwaway accounts) and files
under ``/run`` (``StrictModes`` rejects an ``AuthorizedKeysFile`` under the
world-writable ``/tmp``).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.testing import procs
from gatekeeper.testing.poll import wait_until

SSHD = "/usr/sbin/sshd"

#: Debian's own globals that matter here; a Match block must beat them.
DEBIAN_GLOBALS = """\
KbdInteractiveAuthentication no
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""


class SshdError(Exception):
    """sshd rejected its configuration or did not start; ``str()`` holds its words."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """One loopback port that was free a moment ago."""
    return free_ports(1)[0]


def keygen(path: Path, comment: str = "") -> Path:
    """A fresh ed25519 key pair at ``path`` (no passphrase); ``path``."""
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
    if comment:
        argv += ["-C", comment]
    subprocess.run([*argv, "-f", str(path)], check=True, capture_output=True)
    return path


def fingerprint(public_key: Path) -> str:
    """The SHA256 fingerprint of a public key file, as sshd logs it."""
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return out.split()[1]


def known_hosts_line(alias: str, host_key: Path) -> str:
    """A known_hosts line pinning ``host_key``'s public half under ``alias``."""
    kind, blob = Path(f"{host_key}.pub").read_text().split()[:2]
    return f"{alias} {kind} {blob}\n"


def check(config: Path) -> None:
    """``sshd -t``: raise :class:`SshdError` with sshd's words if it rejects ``config``."""
    result = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, check=False)
    if result.returncode != 0:
        raise SshdError(f"sshd -t -f {config}: {result.stderr.decode(errors='replace').strip()}")


def version_globals(host_key: Path) -> str:
    """Lines only newer sshds know, probed with ``sshd -t`` rather than a version number.

    OpenSSH >= 9.8 (Debian 13) penalises a client address whose connections
    fail authentication or misbehave; every harness client connects from
    127.0.0.1, so the penalties are off where the keyword exists.
    """
    lines = ""
    probe = host_key.with_name("version-probe.conf")
    for line in ("PerSourcePenalties no",):
        probe.write_text(f"HostKey {host_key}\n{line}\n")
        result = subprocess.run([SSHD, "-t", "-f", str(probe)], capture_output=True, check=False)
        if result.returncode == 0:
            lines += line + "\n"
    probe.unlink()
    return lines


def loopback_config(
    *,
    include: Path,
    host_key: Path,
    authorized_keys: Path,
    globals_: str = DEBIAN_GLOBALS,
    extra: str = "",
) -> str:
    """A Debian-like ``sshd_config`` for 127.0.0.1: drop-ins from ``include``, keys by user."""
    return (
        f"Include {include}/*.conf\n"
        f"HostKey {host_key}\n"
        "ListenAddress 127.0.0.1\n"
        "PidFile none\n"
        f"AuthorizedKeysFile {authorized_keys}/%u\n"
        "StrictModes yes\n"
        "UsePAM no\n"
        "PasswordAuthentication no\n"
        "PermitRootLogin no\n"
        "PermitUserEnvironment no\n"
        "LogLevel VERBOSE\n" + extra + globals_
    )


@dataclass
class Listener:
    """A running ``sshd -D`` and the ports it listens on."""

    process: subprocess.Popen[bytes]
    ports: list[int]

    @property
    def port(self) -> int:
        """The first (usually only) port."""
        return self.ports[0]


def _spawn(
    config: Path,
    log: Path,
    ports: Sequence[int],
    new_session: bool,
    env: Mapping[str, str] | None,
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config), *(f"-p{port}" for port in ports)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=new_session,
            env=None if env is None else dict(env),
        )


def start(
    config: Path,
    log: Path,
    *,
    ports: Sequence[int] | None = None,
    count: int = 1,
    new_session: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> Listener:
    """Start sshd with ``config`` (checked with ``sshd -t`` first), logging to ``log``.

    With ``ports`` given (a config that names them, e.g. in ``Match LocalPort``),
    one attempt; otherwise ``count`` free ports, up to five attempts. The config
    needs a ``LogLevel`` of INFO or more (the listening line is read from ``log``).
    """
    check(config)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    for _attempt in range(1 if ports is not None else 5):
        chosen = list(ports) if ports is not None else free_ports(count)
        process = _spawn(config, log, chosen, new_session, env)
        wanted = [f"Server listening on 127.0.0.1 port {port}." for port in chosen]

        def up(process: subprocess.Popen[bytes] = process, wanted: list[str] = wanted) -> bool:
            if process.poll() is not None:
                return True
            text = log.read_text(errors="replace")
            return all(line in text for line in wanted)

        try:
            wait_until(up, timeout, "sshd to listen")
        except BaseException:
            procs.stop(process)
            raise
        if process.poll() is None:
            return Listener(process, chosen)
    raise SshdError(f"sshd did not start: {log.read_text(errors='replace')[-2000:]}")
