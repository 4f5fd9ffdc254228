"""A private systemd-journald namespace: started, read back with journalctl, removed.

A namespaced journald (``systemd-journald NAMESPACE``) exits after 30 s with no
stdout stream connected, because it expects socket activation to start it
again; every audit write would then fail (exit 75). :func:`open_stream` holds
one stream open for as long as the namespace is used.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.testing import procs
from gatekeeper.testing.poll import wait_until

JOURNALD = "/lib/systemd/systemd-journald"


def socket_path(namespace: str) -> str:
    """The native-protocol socket of ``namespace`` (the policy's ``journal_socket``)."""
    return f"/run/systemd/journal.{namespace}/socket"


def stdout_path(namespace: str) -> str:
    """The stdout-stream socket of ``namespace``."""
    return f"/run/systemd/journal.{namespace}/stdout"


@dataclass
class Journal:
    """A journald namespace, read back with ``journalctl --namespace`` as JSON."""

    namespace: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        """The native-protocol socket."""
        return socket_path(self.namespace)

    def records(self, *matches: str, identifier: str | None = "gatekeeper") -> list[dict[str, Any]]:
        """Every entry matching ``matches`` (``FIELD=value``) and ``identifier``."""
        argv = ["journalctl", f"--namespace={self.namespace}", "-o", "json", "--no-pager"]
        if identifier:
            argv.append(f"SYSLOG_IDENTIFIER={identifier}")
        argv += list(matches)
        out = subprocess.run(argv, capture_output=True, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def messages(self, *matches: str) -> list[dict[str, Any]]:
        """The JSON records (MESSAGE) of gatekeeper entries matching ``matches``."""
        return [json.loads(r["MESSAGE"]) for r in self.records(*matches)]

    def wait_for(
        self, *matches: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll until at least ``count`` entries match; those entries."""
        return wait_until(
            lambda: r if len(r := self.records(*matches)) >= count else None,
            timeout,
            f"{count} journal record(s) matching {matches}",
        )

    def by_connection(self, connection_id: str) -> list[dict[str, Any]]:
        """The entries of one connection id."""
        return self.records(f"GATEKEEPER_CONNECTION_ID={connection_id}")

    @property
    def directory(self) -> Path:
        """Where this namespace's journal files are (persistent, else volatile)."""
        machine_id = Path("/etc/machine-id").read_text().strip()
        persistent = Path(f"/var/log/journal/{machine_id}.{self.namespace}")
        if persistent.is_dir():
            return persistent
        return Path(f"/run/log/journal/{machine_id}.{self.namespace}")


def spawn(
    namespace: str,
    *,
    new_session: bool = False,
    env: Mapping[str, str] | None = None,
    hostname: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``systemd-journald NAMESPACE`` and wait until both its sockets exist.

    With ``hostname`` it runs in a UTS namespace of that name: journald stamps every
    entry with ``_HOSTNAME`` from ``gethostname()``, so it stands in for another
    machine of a fleet.
    """
    argv = [JOURNALD, namespace]
    if hostname is not None:
        # The UTS namespace's own hostname (no hostname(1) needed); unshare and sh
        # exec in place, so the pid stays journald's, for procs.stop().
        script = 'printf %s "$0" >/proc/sys/kernel/hostname && exec "$@"'
        argv = ["unshare", "--uts", "--", "/bin/sh", "-c", script, hostname, *argv]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
        env=None if env is None else dict(env),
    )
    try:
        wait_until(lambda: Path(socket_path(namespace)).is_socket(), 15, "the journald socket")
        wait_until(lambda: Path(stdout_path(namespace)).is_socket(), 15, "journald's stdout")
    except BaseException:
        procs.stop(process)
        raise
    return process


def open_stream(namespace: str) -> socket.socket:
    """A connected stdout stream (header sent) that keeps the namespace's journald alive."""
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        stream.connect(stdout_path(namespace))
        # identifier, unit id, priority, level prefix, forward to syslog/kmsg/console
        stream.sendall(b"gatekeeper-harness\n\n6\n0\n0\n0\n0\n")
    except BaseException:
        stream.close()
        raise
    return stream


def remove_files(namespace: str) -> None:
    """Remove the namespace's journal files and runtime directory."""
    machine = Path("/etc/machine-id")
    machine_id = machine.read_text().strip() if machine.exists() else ""
    paths = [f"/run/systemd/journal.{namespace}"]
    if machine_id:  # without it, the paths below would name every namespace's parent
        paths += [
            f"/var/log/journal/{machine_id}.{namespace}",
            f"/run/log/journal/{machine_id}.{namespace}",
        ]
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def journald(namespace: str, hostname: str | None = None) -> Iterator[Journal]:
    """A running journald in ``namespace`` for the ``with`` block; stopped and removed after."""
    process = spawn(namespace, hostname=hostname)
    try:
        with contextlib.closing(open_stream(namespace)):
            yield Journal(namespace, process)
    finally:
        procs.stop(process)
        remove_files(namespace)
