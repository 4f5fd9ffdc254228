"""OpenSSH public keys as the policy lists them: full key lines or SHA256 fingerprints.

Stdlib only: used by the policy validator, the gatekeeper (``SSH_USER_AUTH``)
and the authorized-keys command, which runs on every key sshd is offered.
A person's key is compiled to its fingerprint, ``"SHA256:" +
b64(sha256(blob))`` without padding (SECURITY.md §12, as ``ssh-keygen -lf``):
sshd hands the command the key itself (``%t %k``), and the command compares
fingerprints it computed, so a policy may mix both forms.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Final

from gatekeeper.login import authkeys

FINGERPRINT: Final = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
#: Key types OpenSSH 9.x accepts for user authentication by default (no ssh-dss);
#: one list for the validator and the authorized-keys command.
KEY_TYPES: Final = authkeys.KEY_TYPES
_BASE64: Final = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
#: A comment may be anything printable but must not carry control characters.
_COMMENT: Final = re.compile(r"^[\x20-\x7e]*$")
MAX_BLOB: Final = 16 * 1024


def fingerprint_of_blob(blob: bytes) -> str:
    """The SHA256 fingerprint of a raw key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def blob_of(key_type: str, key_b64: str) -> bytes | None:
    """The raw blob of ``TYPE BASE64`` if it is a well-formed key of that type, else None."""
    if key_type not in KEY_TYPES or len(key_b64) > MAX_BLOB or not _BASE64.fullmatch(key_b64):
        return None
    try:
        blob = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    name = key_type.encode("ascii")
    # The blob starts with the key type as an SSH string: uint32 length, bytes.
    if blob[:4] != len(name).to_bytes(4, "big") or blob[4 : 4 + len(name)] != name:
        return None
    if len(blob) <= 4 + len(name):
        return None
    return blob


def parse_entry(entry: str) -> str:
    """The fingerprint a policy key entry stands for; ValueError saying what is wrong.

    ``SHA256:...`` (43 characters) is taken as is; otherwise the entry must be a
    public key line ``TYPE BASE64 [comment]`` with no options in front.
    """
    if entry.startswith("SHA256:"):
        if not FINGERPRINT.fullmatch(entry):
            raise ValueError("a fingerprint is SHA256: and 43 base64 characters (ssh-keygen -lf)")
        return entry
    words = entry.split(" ", 2)
    if len(words) < 2:
        raise ValueError("expected a public key line 'TYPE BASE64 [comment]' or SHA256:...")
    key_type, key_b64 = words[0], words[1]
    if key_type not in KEY_TYPES:
        raise ValueError(
            f"unknown key type {key_type[:40]!r} (options such as restrict are not allowed here)"
        )
    if len(words) == 3 and not _COMMENT.fullmatch(words[2]):
        raise ValueError("the key comment must be printable ASCII")
    blob = blob_of(key_type, key_b64)
    if blob is None:
        raise ValueError(f"not a valid {key_type} key (bad base64 or a blob of another type)")
    return fingerprint_of_blob(blob)
