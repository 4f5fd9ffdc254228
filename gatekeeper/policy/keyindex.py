"""Write the key index that ``gatekeeper-authorized-keys`` reads; see login.authkeys.

Root writes it, from a policy that passed full validation, beside the
validated-policy cache: ``keys-<hash of the policy path>.txt``, root 0644, via
a temporary file and a rename. Header: ``MAGIC SHA256-OF-POLICY-BYTES VERSION
POLICY-PATH``; then one ``FPR PERSON SCOPE EXPIRES`` line per key, grant scope.
The scope follows the decision's identity rule (:func:`gatekeeper.decide.identify`
and ``_identity_matches``): with ``[identity] source = "authorized-keys-command"``
a grant naming people is theirs alone (on its accounts if it names any); a
grant naming only accounts or groups is for every person who logs in to them.
"""

from __future__ import annotations

import os

from gatekeeper import __version__
from gatekeeper.login import authkeys
from gatekeeper.policy import cache, model


def _scopes(grant: model.Grant, person: str, source: str) -> list[str]:
    accounts = [f"u:{u}" for u in sorted(grant.users)] + [f"g:{g}" for g in sorted(grant.groups)]
    if grant.people and source == model.AUTHORIZED_KEYS_COMMAND:
        if person not in grant.people:
            return []
        return accounts or ["*"]
    # Without the command the 0.1 rule holds: any of users / groups / people.
    return accounts + (["*"] if person in grant.people else [])


def render(policy: model.Policy) -> str:
    """The index text for a validated policy."""
    lines = [f"{authkeys.MAGIC} {policy.sha256} {__version__} {os.path.abspath(policy.path)}"]
    for person, fingerprints in sorted(policy.people.items()):
        for grant in policy.grants:
            expires = "-" if grant.expires is None else str(int(grant.expires.timestamp()))
            for scope in _scopes(grant, person, policy.identity_source):
                lines += [f"{fpr} {person} {scope} {expires}" for fpr in sorted(fingerprints)]
    return "\n".join(lines) + "\n"


def store(policy: model.Policy, cache_dir: str = authkeys.DEFAULT_DIR) -> bool:
    """Write the index for a policy that passed validation; ``False`` if not written (not root)."""
    if os.geteuid() != 0 or not policy.path or not policy.sha256:
        return False
    target = authkeys.index_file(policy.path, cache_dir)
    return cache.write_root_file(cache_dir, target, render(policy).encode("ascii"))
