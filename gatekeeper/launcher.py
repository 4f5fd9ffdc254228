"""The hand-written ``/usr/bin/gatekeeper`` launcher (SPEC §4, SECURITY.md §13).

A pip console script starts Python without isolation: a ``.pth`` file in the
guest's user site runs code, ``PYTHONINSPECT`` turns a denial into a REPL on
the guest's terminal, ``python -m`` imports ``json.py`` from the working
directory. The launcher starts the interpreter with ``-I`` (isolated: no
``PYTHON*`` variables, no user site, no script or working directory on
``sys.path``) and imports nothing but the gatekeeper.

``python -m gatekeeper.launcher PYTHON`` prints the launcher for an
interpreter; packaging and the test set-up install it root-owned, mode 0755.
"""

from __future__ import annotations

import sys

TEMPLATE = """\
#!{python} -I
# ssh-gatekeeper launcher - generated, do not edit.
# sshd runs this for every guest login (ForceCommand). Python runs isolated
# (-I): PYTHON* variables, the user site and the working directory are ignored.
# SIGINT, SIGQUIT and SIGTSTP from the guest's terminal are ignored from here on,
# not only from main(): importing the gatekeeper takes ~0.1 s, and a Ctrl-C in
# that window would print a traceback to the guest and leave no audit record.
import signal

for _signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
    signal.signal(_signum, signal.SIG_IGN)

from gatekeeper.login.entry import main

main()
"""


AUTHORIZED_KEYS_TEMPLATE = """\
#!{python} -I
# ssh-gatekeeper-authorized-keys launcher - generated, do not edit.
# sshd's AuthorizedKeysCommand (%u %t %k %f): runs for every key offered at
# every guest login, isolated (-I). sshd requires it root-owned and not
# writable by group or others, in root-owned directories.
from gatekeeper.login.authkeys import main

main()
"""

TEMPLATES = {"gatekeeper": TEMPLATE, "authorized-keys": AUTHORIZED_KEYS_TEMPLATE}


def render(python: str, entry: str = "gatekeeper") -> str:
    """The launcher text for the absolute interpreter path ``python``."""
    if not python.startswith("/") or any(c.isspace() for c in python):
        raise ValueError("the interpreter must be an absolute path without spaces")
    return TEMPLATES[entry].format(python=python)


if __name__ == "__main__":
    sys.stdout.write(
        render(
            sys.argv[1] if len(sys.argv) > 1 else sys.executable,
            sys.argv[2] if len(sys.argv) > 2 else "gatekeeper",
        )
    )
