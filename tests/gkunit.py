"""Helpers for the unit and property tiers: the attack corpus, policies, connections.

Nothing here touches tmux, sshd or journald. Policies for :func:`connect.run`
are real files: root-owned, mode 0644, in a fresh 0755 directory under /tmp
(``/tmp`` itself is sticky and root-owned, which the file-safety check accepts),
with the audit record going to a ``sink = "file"`` in the same directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatekeeper.policy import model

REPO = Path(__file__).resolve().parents[1]
#: The shared security corpus lives beside the clone (``../shared`` from the repo root).
CORPUS = REPO.parent / "shared" / "attack-corpus.jsonl"

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def corpus() -> dict[str, dict[str, Any]]:
    """Every corpus entry by id; fails loudly (not a skip) when the file is missing."""
    if not CORPUS.is_file():
        raise FileNotFoundError(
            f"attack corpus not found at {CORPUS}: the tests expect a copy of shared/ "
            "beside the repository clone"
        )
    entries = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    return {entry["id"]: entry for entry in entries}


def corpus_command(entry: dict[str, Any]) -> bytes | None:
    """The exact SSH_ORIGINAL_COMMAND bytes of a corpus entry (hex and repeat forms too)."""
    vector = entry["vector"]
    if "original_command_bytes_hex" in vector:
        return bytes.fromhex(vector["original_command_bytes_hex"])
    if "original_command_repeat" in vector:
        repeat = vector["original_command_repeat"]
        return (repeat["unit"] * repeat["count"]).encode()
    command = vector.get("original_command")
    return None if command is None else command.encode("utf-8")


def connection(**overrides: Any) -> model.Connection:
    """A guest connection with a terminal, user ``pair`` in ``tmux_group``, from 127.0.0.1."""
    values: dict[str, Any] = {
        "user": "pair",
        "uid": 1001,
        "gid": 1001,
        "home": "/home/pair",
        "groups": frozenset({"pair", "tmux_group"}),
        "client_addr": "127.0.0.1",
        "client_port": 50000,
        "server_addr": "127.0.0.1",
        "server_port": 22,
        "tty": "/dev/pts/3",
        "has_tty": True,
        "term": "xterm-256color",
    }
    values.update(overrides)
    return model.Connection(**values)


@dataclass
class PolicyDir:
    """A root-owned 0755 directory under /tmp holding a policy and its audit file."""

    path: Path

    @property
    def policy(self) -> Path:
        return self.path / "gatekeeper.toml"

    @property
    def audit_file(self) -> Path:
        return self.path / "audit.jsonl"

    def audit_header(self, sink_file: Path | None = None) -> str:
        target = self.audit_file if sink_file is None else sink_file
        return f'version = 1\n[audit]\nsink = "file"\nfile = "{target}"\n'

    def write(self, body: str, *, header: bool = True, mode: int = 0o644) -> Path:
        """Write the policy (with the file-sink ``[audit]`` header unless told not to)."""
        self.policy.write_text((self.audit_header() if header else "") + body)
        self.policy.chmod(mode)
        return self.policy

    def records(self) -> list[dict[str, Any]]:
        if not self.audit_file.exists():
            return []
        return [json.loads(line) for line in self.audit_file.read_text().splitlines()]


def policy_dir() -> Iterator[PolicyDir]:
    """Generator behind the ``policy_dir`` fixtures of both tiers."""
    path = Path(tempfile.mkdtemp(prefix="gk-unit-", dir="/tmp"))
    path.chmod(0o755)
    directory = PolicyDir(path)
    try:
        yield directory
    finally:
        shutil.rmtree(path, ignore_errors=True)
        # connect.run as root refreshes the validated-policy cache for the policy
        # it loaded: leave no entry behind for a path that no longer exists.
        with contextlib.suppress(ImportError, OSError):
            from gatekeeper.policy.cache import cache_file  # noqa: PLC0415

            os.unlink(cache_file(str(directory.policy)))


def environ(command: bytes | None = None, **extra: bytes) -> dict[bytes, bytes]:
    """What sshd passes under ForceCommand (SECURITY.md §9), as bytes."""
    env = {
        b"USER": b"someone-else",
        b"LOGNAME": b"someone-else",
        b"HOME": b"/home/someone-else",
        b"PATH": b"/usr/bin:/bin",
        b"SHELL": b"/bin/sh",
        b"SSH_CLIENT": b"192.0.2.7 50022 192.0.2.1 22",
        b"SSH_CONNECTION": b"192.0.2.7 50022 192.0.2.1 22",
        b"SSH_TTY": b"/dev/pts/7",
        b"TERM": b"xterm-256color",
        b"LD_PRELOAD": b"/tmp/evil.so",
        b"SSH_AUTH_SOCK": b"/tmp/ssh-x/agent.1",
    }
    if command is not None:
        env[b"SSH_ORIGINAL_COMMAND"] = command
    env.update({key.encode(): value for key, value in extra.items()})
    return env


def as_root_user() -> str:
    """The account the tests run as (root): connect.run reads it from the kernel."""
    import pwd  # noqa: PLC0415 - only the connect tests need it

    return pwd.getpwuid(os.getuid()).pw_name


def decode_datagram(data: bytes) -> list[tuple[str, bytes]]:
    """Read a journald native datagram the way journald does, both framings.

    ``KEY=value\\n`` for a plain field, ``KEY\\n<u64 le length><bytes>\\n`` for a
    binary one. Returns the fields in order, repeated keys included.
    """
    fields: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(data):
        newline = data.index(b"\n", pos)
        line = data[pos:newline]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields.append((key.decode("ascii"), value))
            pos = newline + 1
            continue
        size = int.from_bytes(data[newline + 1 : newline + 9], "little")
        start = newline + 9
        fields.append((line.decode("ascii"), data[start : start + size]))
        if data[start + size : start + size + 1] != b"\n":
            raise ValueError(f"binary field {line!r} is not terminated by a newline")
        pos = start + size + 1
    return fields
