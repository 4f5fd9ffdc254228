"""journald's native protocol, written by hand (no libsystemd binding on the path).

Every field is sent with the binary framing ``KEY\\n<u64 le length><bytes>\\n``
whatever its value, so no value - a newline in a request, a forged
``PRIORITY=0`` - can start a field of its own (SECURITY.md §23, corpus
LOG-01). Keys are checked against journald's rules. Datagrams are capped well
below the ~208 KiB the kernel accepts (SECURITY.md §26); the caller truncates
long values.
"""

from __future__ import annotations

import re
import socket
import struct
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_DATAGRAM: Final = 128 * 1024
#: journald's own rule (journal_field_valid): A-Z, 0-9 and _, at most 64, no leading
#: digit or underscore. journald drops a field that breaks it, so refuse it here.
_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def encode(fields: Mapping[str, str]) -> bytes:
    """Encode fields as one native-protocol datagram; raise ``ValueError`` if unsafe."""
    out = bytearray()
    for key, value in fields.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"invalid journald field name {key!r}")
        data = value.encode("utf-8", errors="backslashreplace")
        out += key.encode("ascii") + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    if len(out) > MAX_DATAGRAM:
        raise ValueError(f"journald datagram of {len(out)} bytes exceeds {MAX_DATAGRAM}")
    return bytes(out)


def send(socket_path: str, fields: Mapping[str, str], timeout: float = 5.0) -> None:
    """Send one entry; raise ``OSError``/``ValueError`` if it was not accepted."""
    payload = encode(fields)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        sent = sock.sendto(payload, socket_path)
    if sent != len(payload):
        raise OSError(f"short write to journald: {sent} of {len(payload)} bytes")
