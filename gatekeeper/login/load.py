"""Stage: the policy for this login - from the validated cache, else validated in full.

The policy file is read and hashed once: the cache is looked up by those
bytes, and on a miss the same bytes are validated (pydantic is imported only
then). A root-written cache of this exact policy's validated form keeps
pydantic off the path; any doubt about it is a miss. Only the grants that
name this account, its groups or its people are built: decide() looks at no
others (``policy.cache.decode``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from gatekeeper.login import fsafety
from gatekeeper.policy import cache

if TYPE_CHECKING:
    from gatekeeper.policy.loader import PolicyError
    from gatekeeper.policy.model import Connection, Policy


def policy(path: str, connection: Connection) -> Policy | PolicyError:
    """The policy at ``path`` (fail closed: a :class:`PolicyError` is returned, not raised)."""
    try:
        raw: bytes | None = fsafety.read_trusted(path)
    except (OSError, fsafety.UnsafeFileError):
        raw = None  # the full load below reports why, with its usual error
    sha256 = hashlib.sha256(raw).hexdigest() if raw is not None else ""
    if raw is not None:
        hit = cache.lookup_bytes(path, sha256, relevant_to=connection)
        if hit is not None:
            return hit
    from gatekeeper.policy import loader  # noqa: PLC0415 - pydantic is heavy: misses only

    try:
        loaded = loader.load(path) if raw is None else loader.parse(raw, path, sha256)[1]
    except loader.PolicyError as error:
        return error
    cache.store(loaded)  # as root only; not written changes nothing
    return loaded
