"""Every line the gatekeeper shows a guest, in one place.

These strings are an interface: they are pinned by exact-string tests and a
change to any of them is a *Changed* entry in the CHANGELOG. Rules:

* one short line, written to stderr (stdout may carry a binary protocol such
  as sftp, and must stay clean: attack corpus SUB-08);
* never a policy path, a grant index, a rule name or a traceback;
* never raw guest text: only the reference id (hex) and, where useful, a
  session or program name that the policy validated against
  ``^[A-Za-z0-9_-]{1,64}$``;
* the reference id is the audit record's ``connection_id``, so the admin can
  find the full reason with ``journalctl GATEKEEPER_CONNECTION_ID=<ref>``.
"""

from __future__ import annotations

from gatekeeper.exitcodes import EX_CONFIG, EX_SOFTWARE, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE

PREFIX = "gatekeeper: "

DENIED = PREFIX + "access denied (ref {ref}). Run 'list' to see what you may use."
BAD_REQUEST = PREFIX + "request not understood (ref {ref}). Run 'help' for usage."
NEED_TTY = PREFIX + "this needs a terminal: connect with 'ssh -t' (ref {ref})."
NOT_RUNNING = PREFIX + "session '{name}' is not running or not shared with you (ref {ref})."
UNAVAILABLE = PREFIX + "service unavailable, contact the administrator (ref {ref})."
#: Shown before attach to a session with ``record = "on"`` or ``"required"`` (notice of recording).
RECORDED = PREFIX + "session '{name}' is recorded: everything shown in it is kept with timing."

#: ``list`` (stdout): no grant applies right now; the headings of its two tables.
LIST_EMPTY = "Nothing is shared with you right now."
LIST_SESSIONS = "Sessions (ssh -t ... attach NAME, or watch NAME):"
LIST_PROGRAMS = "Programs (ssh -t ... run NAME):"
LIST_RUNNING = "running"
LIST_NOT_RUNNING = "not running"
LIST_ATTACHED = ", {count} attached"
LIST_DEFAULT = "  (default)"

HELP = """\
ssh-gatekeeper: shared terminal sessions over SSH.

Usage (ssh [-t] USER@HOST COMMAND):
  (no command)       open your default session or program (needs -t)
  attach SESSION     attach to a shared tmux session (needs -t)
  watch SESSION      attach read-only, even where you may write (needs -t)
  run PROGRAM        run a program the administrator allows (needs -t)
  list [--json]      the sessions and programs you may use
  whoami             who the gatekeeper thinks you are
  help               this text
"""


def recorded(name: str) -> str:
    """The recording notice for session ``name`` (a policy-validated name)."""
    return RECORDED.format(name=name) + "\n"


def line(template: str, *, ref: str, name: str = "") -> str:
    """Format one guest-facing line; ``name`` must be a policy-validated name."""
    return template.format(ref=ref, name=name) + "\n"


def denial(code: int, *, ref: str, name: str = "", needs_tty: bool = False) -> str:
    """The one line for a login that ends with exit ``code`` instead of exec.

    ``name``: the session that is not running (a policy-validated name), if any.
    """
    if needs_tty:
        return line(NEED_TTY, ref=ref)
    if code == EX_USAGE:
        return line(BAD_REQUEST, ref=ref)
    if code == EX_UNAVAILABLE and name:
        return line(NOT_RUNNING, ref=ref, name=name)
    # 69 without a session name: the program (or tmux) is missing on this host -
    # the admin's problem, not a session the guest could wait for.
    if code in (EX_CONFIG, EX_TEMPFAIL, EX_SOFTWARE, EX_UNAVAILABLE):
        return line(UNAVAILABLE, ref=ref)
    return line(DENIED, ref=ref)
