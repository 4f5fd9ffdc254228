"""Forwarding never reaches the gatekeeper, so sshd must refuse it (SECURITY.md §1.1-1.2).

Each kind of forwarding (corpus FWD-01/02/04/05 and SOCKS) is tried twice
against a real service: under the generated Match block it must fail, and
under a ForceCommand-only block - the classic how-to's setup - it must work,
which proves the probe can see a forwarding when there is one. The gatekeeper
never runs for ``ssh -N``: no audit record appears either way.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.accounts]

TOKEN = b"INTERNAL-SERVICE-" + secrets.token_hex(4).encode()


class Service:
    """A TCP and a Unix-socket service on this host that greet every client with TOKEN."""

    def __init__(self, unix_path: Path) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.unix_path = unix_path
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(str(unix_path))
        unix_path.chmod(0o666)
        self.unix.listen()
        self.threads = [
            threading.Thread(target=self._serve, args=(s,), daemon=True)
            for s in (self.tcp, self.unix)
        ]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _serve(server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(TOKEN)

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


@pytest.fixture(scope="module")
def service(site) -> Iterator[Service]:
    made = Service(site.root / "internal.sock")
    yield made
    made.close()


@pytest.fixture(scope="module")
def naive(deployment) -> gksshd.Sshd:
    """The how-to's setup: ForceCommand and nothing else, over Debian's globals."""
    guest = deployment.accounts.guest.name
    dropin = (
        f"Match User {guest}\n    ForceCommand {gktest.GATEKEEPER} --policy {deployment.policy}\n"
    )
    sshd: gksshd.Sshd = deployment.site.start("naive", dropin)
    return sshd


def read_from(connect: Callable[[], socket.socket]) -> bytes | None:
    """Connect (None while nothing listens) and read until the peer closes."""
    try:
        sock = connect()
    except OSError:
        return None
    with sock:
        sock.settimeout(10)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                data += chunk
        return data


def tcp(port: int) -> Callable[[], socket.socket]:
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=5)


def unix(path: Path) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock

    return connect


def socks5(port: int, target_port: int) -> bytes | None:
    """A minimal SOCKS5 CONNECT to 127.0.0.1:target_port through ``ssh -D``."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return None
    with sock:
        sock.settimeout(10)
        try:
            sock.sendall(b"\x05\x01\x00")
            if sock.recv(2) != b"\x05\x00":
                return b""
            sock.sendall(
                b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + target_port.to_bytes(2)
            )
            reply = sock.recv(10)
            if len(reply) < 2 or reply[1] != 0:
                return b""
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        except OSError:
            return b""
        return data


@contextlib.contextmanager
def ssh_n(sshd: gksshd.Sshd, deployment, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    argv = sshd.ssh_argv(
        deployment.keys["guest"],
        deployment.accounts.guest.name,
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        *options,
    )
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=gksshd.client_env(),
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def attempt(kind: str, sshd: gksshd.Sshd, deployment, service: Service, scratch: Path) -> bytes:
    """Try one kind of forwarding; return what came back through it (b"" if nothing)."""
    if kind == "W":
        result = sshd.ssh(
            deployment.keys["guest"],
            deployment.accounts.guest.name,
            "-W",
            f"127.0.0.1:{service.port}",
            stdin=None,
        )
        return result.stdout
    local = gksshd.free_port()
    if kind == "L":
        options, probe = ("-L", f"127.0.0.1:{local}:127.0.0.1:{service.port}"), tcp(local)
    elif kind == "R":
        options, probe = ("-R", f"127.0.0.1:{local}:127.0.0.1:{service.port}"), tcp(local)
    elif kind == "D":
        options = ("-D", f"127.0.0.1:{local}")

        def probe() -> socket.socket:  # unused: SOCKS needs its own handshake
            raise OSError

    else:  # Unix-socket forwarding to a socket on the server (e.g. the tmux socket)
        path = scratch / f"fwd-{secrets.token_hex(3)}.sock"
        options, probe = ("-L", f"{path}:{service.unix_path}"), unix(path)
    with ssh_n(sshd, deployment, *options) as process:

        def outcome() -> bytes | None:
            got = socks5(local, service.port) if kind == "D" else read_from(probe)
            if got is None and process.poll() is not None:
                return b"ssh exited"  # the forwarding was refused at set-up
            return got

        got = gktest.wait_until(lambda: (r,) if (r := outcome()) is not None else None, 30)[0]
        return b"" if got == b"ssh exited" else got


KINDS = ["L", "R", "D", "W", "unix"]


@pytest.mark.parametrize("kind", KINDS)
def test_forwarding_is_refused_under_the_generated_config(
    kind, deployment, service, journal, tmp_path
) -> None:
    before = len(journal.records(f"GATEKEEPER_USER={deployment.accounts.guest.name}"))
    assert TOKEN not in attempt(kind, deployment.sshd, deployment, service, tmp_path)
    assert len(journal.records(f"GATEKEEPER_USER={deployment.accounts.guest.name}")) == before


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_forwarding_works_with_forcecommand_only(
    kind, naive, deployment, service, tmp_path
) -> None:
    assert attempt(kind, naive, deployment, service, tmp_path) == TOKEN
