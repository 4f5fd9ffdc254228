"""Every exit code of ``gatekeeper`` and ``gatekeeperctl``, defined once (sysexits.h).

Exit codes are an interface (SPEC, README "Exit codes"): a change here is a
*Changed* entry in the CHANGELOG. Nothing else in the package writes a
numeric exit code other than 0 (success) and 1 (``EX_DENIED``: denied, or a
check that found problems). Pure: imports nothing.
"""

from __future__ import annotations

from typing import Final

EX_OK: Final = 0
#: Denied (no grant, unknown command, a socket that is not the host's); for
#: ``gatekeeperctl``: the check found problems.
EX_DENIED: Final = 1
EX_USAGE: Final = 64
EX_NOINPUT: Final = 66
EX_NOUSER: Final = 67
EX_UNAVAILABLE: Final = 69
EX_SOFTWARE: Final = 70
EX_TEMPFAIL: Final = 75
EX_NOPERM: Final = 77
EX_CONFIG: Final = 78

#: ``gatekeeper``'s exit codes and what each means, for gatekeeper(8) and the README.
GATEKEEPER_CODES: Final = (
    (EX_OK, "list, whoami or help was answered; after exec, the status is the program's or tmux's"),
    (EX_DENIED, "the request was denied"),
    (EX_USAGE, "the request was not understood, or needs a terminal (ssh -t)"),
    (EX_UNAVAILABLE, "the session is not running or its socket is not reachable"),
    (EX_SOFTWARE, "internal error (fail closed)"),
    (EX_TEMPFAIL, "the audit record could not be written (fail closed)"),
    (EX_CONFIG, "the policy is missing, invalid or unsafe (fail closed)"),
)
