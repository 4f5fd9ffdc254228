"""A fleet on loopback: two hosts' journals, uploaded to one collector, reviewed there.

Real programs only: two systemd-journald namespaces, each in a UTS namespace
of its own hostname (``hosta``, ``hostb``), each uploaded by a real
``systemd-journal-upload`` to one real ``systemd-journal-remote
--split-mode=host`` listening on 127.0.0.1. journal-remote names a file after
the peer address (Debian builds it without ``--trust``), so the two hosts need
two addresses: host A connects from 127.0.0.1, host B through a plain TCP
relay that connects from 127.0.0.2 (both loopback; the relay only copies
bytes). A hostile host admin is played by POSTing a hand-written export
stream to the collector, as anyone who can reach it can.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gktest
import pytest
from gksshd import free_port

pytestmark = [pytest.mark.journald]

REMOTE = "/lib/systemd/systemd-journal-remote"
UPLOAD = "/lib/systemd/systemd-journal-upload"

#: A host-side record as root writes it with the project's own writer.
SEND = (
    "import json, sys\n"
    "from gatekeeper.login import audit, journald\n"
    "record = json.loads(sys.argv[2])\n"
    "message = json.dumps(record, ensure_ascii=True)\n"
    "journald.send(sys.argv[1], audit.journal_fields(record, 'gatekeeper', message))\n"
)


def share_record(tag: str, host: str) -> dict[str, Any]:
    return {
        "event": "share",
        "decision": "allow",
        "session": f"pair-{host}",
        "changes": f"granted {tag}",
        "by": "root",
        "connection_id": f"{tag}-{host}",
        "pid": os.getpid(),
        "message_id": "e5cd6f6bc0d94febbf07c7b26573cc00",
    }


def send(journal: gktest.Journal, record: dict[str, Any]) -> None:
    argv = [str(gktest.PYTHON), "-I", "-c", SEND, journal.socket, json.dumps(record)]
    subprocess.run(argv, check=True, timeout=30)


class Relay:
    """Accept on 127.0.0.1:port, connect to ``target`` from ``source``, copy bytes."""

    def __init__(self, source: str, target: tuple[str, int]) -> None:
        self.source, self.target = source, target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, source_address=(self.source, 0))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(reader: socket.socket, writer: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := reader.recv(65536):
                writer.sendall(data)
        with contextlib.suppress(OSError):
            writer.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def collector(world_dir: Path) -> Iterator[tuple[int, Path]]:
    gktest.require_root()
    gktest.require_tool(REMOTE, UPLOAD, "journalctl")
    port = free_port()
    output = world_dir / "remote"
    output.mkdir()
    process = subprocess.Popen(
        [REMOTE, f"--listen-http=127.0.0.1:{port}", "--split-mode=host", f"--output={output}/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        gktest.wait_until(listening, 10, "systemd-journal-remote listening")
        yield port, output
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def upload(journal: gktest.Journal, port: int) -> None:
    """One real systemd-journal-upload run over the namespace's journal files."""
    result = subprocess.run(
        [
            UPLOAD,
            f"--url=http://127.0.0.1:{port}",
            f"--directory={journal.directory}",
            "--follow=no",
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def forge(port: int, fields: dict[str, str]) -> None:
    """POST one entry in journald's export format, as a host's admin can."""
    body = "".join(f"{k}={v}\n" for k, v in fields.items()).encode() + b"\n"
    connection = http.client.HTTPConnection("127.0.0.1", port, source_address=("127.0.0.1", 0))
    connection.request("POST", "/upload", body, {"Content-Type": "application/vnd.fdo.journal"})
    response = connection.getresponse()
    assert response.status == 202, response.read()
    connection.close()


def audit(*args: str) -> subprocess.CompletedProcess[bytes]:
    argv = [str(gktest.GATEKEEPERCTL), "audit", *args]
    return subprocess.run(argv, capture_output=True, check=False, timeout=120)


def test_a_collector_attributes_records_to_the_host_whose_file_they_came_from(  # noqa: PLR0915 - one fleet scenario (two hosts, a forger, a control) read top to bottom
    collector, world_dir: Path
) -> None:
    port, output = collector
    tag = f"fleet{secrets.token_hex(4)}"
    relay = Relay("127.0.0.2", ("127.0.0.1", port))
    hosts = world_dir / "hosts"
    hosts.write_text("127.0.0.1 hosta\n127.0.0.2 hostb.example.org hostb\n")
    with (
        gktest.journald(f"{tag}a", hostname="hosta") as host_a,
        gktest.journald(f"{tag}b", hostname="hostb") as host_b,
    ):
        send(host_a, share_record(tag, "a"))
        send(host_b, share_record(tag, "b"))
        host_a.wait_for(f"GATEKEEPER_CONNECTION_ID={tag}-a")
        host_b.wait_for(f"GATEKEEPER_CONNECTION_ID={tag}-b")
        upload(host_a, port)
        upload(host_b, relay.port)
    relay.close()

    # host A's admin forges a record claiming to come from host B, and one
    # claiming a root-run connect for a guest uid.
    forged = json.dumps({**share_record(tag, "forged-b"), "by": "hostb-admin"})
    common = {
        "__REALTIME_TIMESTAMP": "1700000000000000",
        "SYSLOG_IDENTIFIER": "gatekeeper",
        "_EXE": str(Path(str(gktest.PYTHON)).resolve()),
    }
    forge(port, {**common, "_HOSTNAME": "hostb", "_UID": "0", "_PID": "1", "MESSAGE": forged})
    connect = {"event": "connect", "decision": "allow", "uid": 1001, "pid": 4242,
               "user": "guest", "connection_id": f"{tag}-uid0", "reason": "granted"}  # fmt: skip
    forge(
        port,
        {**common, "_HOSTNAME": "hosta", "_UID": "0", "_PID": "4242",
         "MESSAGE": json.dumps(connect)},
    )  # fmt: skip

    files = sorted(p.name for p in output.iterdir())
    assert files == ["remote-127.0.0.1.journal", "remote-127.0.0.2.journal"], files

    # CONTROL: the collector kept what the sender said; plain journalctl believes it.
    plain = subprocess.run(
        ["journalctl", f"--directory={output}", "-o", "json", "SYSLOG_IDENTIFIER=gatekeeper"],
        capture_output=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    claims = {json.loads(json.loads(x)["MESSAGE"])["connection_id"]: json.loads(x) for x in plain}
    assert claims[f"{tag}-forged-b"]["_HOSTNAME"] == "hostb"
    assert claims[f"{tag}-uid0"]["_UID"] == "0"

    def read() -> dict[str, dict[str, Any]] | None:
        result = audit("--directory", str(output), "--hosts", str(hosts), "--json")
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        by_id = {r["connection_id"]: r for r in rows if str(r.get("connection_id")).startswith(tag)}
        return by_id if len(by_id) == 4 else None

    by_id = gktest.wait_until(read, 20, "the collector's four records")
    genuine_a, genuine_b = by_id[f"{tag}-a"], by_id[f"{tag}-b"]
    assert (genuine_a["host"], genuine_a["trust"]) == ("127.0.0.1", "trusted")
    assert (genuine_b["host"], genuine_b["trust"]) == ("127.0.0.2", "trusted")
    assert genuine_a["trust_scope"] == genuine_b["trust_scope"] == "host-claim"
    wrong_host = by_id[f"{tag}-forged-b"]
    assert wrong_host["host"] == "127.0.0.1"
    assert wrong_host["trust"] == "forged"
    assert "claims host hostb" in wrong_host["trust_reason"]
    uid0 = by_id[f"{tag}-uid0"]
    assert uid0["trust"] == "forged"
    assert "sent by uid 0" in uid0["trust_reason"]

    table = audit("--directory", str(output), "--hosts", str(hosts)).stdout.decode()
    header = table.splitlines()[0].split()
    assert header[:3] == ["TIME", "HOST", "TRUST"], header
    lines = {cid: next(x for x in table.splitlines() if cid in x) for cid in by_id}
    assert "127.0.0.2" in lines[f"{tag}-b"]
    assert " claim " in lines[f"{tag}-b"]
    assert " FORGED " in lines[f"{tag}-forged-b"]

    # One host's file alone: --file names its host from the file name.
    one = audit("--file", str(output / "remote-127.0.0.2.journal"), "--hosts", str(hosts), "--json")
    assert one.returncode == 0, one.stderr
    ids = {json.loads(x)["connection_id"]: json.loads(x) for x in one.stdout.splitlines()}
    assert ids[f"{tag}-b"]["host"] == "127.0.0.2"
    assert f"{tag}-a" not in ids

    # Without a name for the address, the host cannot be checked: said, not hidden.
    unknown = world_dir / "no-hosts"
    unknown.write_text("")
    blind = audit("--directory", str(output), "--hosts", str(unknown), "--json")
    rows_blind = {json.loads(x)["connection_id"]: json.loads(x) for x in blind.stdout.splitlines()}
    assert rows_blind[f"{tag}-b"]["trust"] == "unverified"
    assert "no name is known for 127.0.0.2" in rows_blind[f"{tag}-b"]["trust_reason"]

    # A journal file that names no source host (copied, or SplitMode=none): nobody
    # vouches for where its records came from.
    copied = world_dir / "copied"
    copied.mkdir()
    (copied / "system.journal").write_bytes((output / "remote-127.0.0.2.journal").read_bytes())
    loose = audit("--directory", str(copied), "--hosts", str(hosts), "--json")
    assert loose.returncode == 0, loose.stderr
    rows_loose = {json.loads(x)["connection_id"]: json.loads(x) for x in loose.stdout.splitlines()}
    assert rows_loose[f"{tag}-b"]["host"] == "-"
    assert rows_loose[f"{tag}-b"]["trust"] == "unverified"
    assert "names no source host" in rows_loose[f"{tag}-b"]["trust_reason"]
