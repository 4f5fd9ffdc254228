"""Host side of session recording: the directory, the pipes, the periods, failures.

Runs as the host (``share``, the join/leave hooks, the watcher, a failing
recorder). How it works (docs/hosting.md, "Record and replay"):

* ``share`` checks (or creates) the recordings directory: a real directory,
  owned by the host, mode 0700 - guests can neither list nor read it - or it
  refuses with the command that fixes it;
* every pane of the server gets ``pipe-pane -O`` to the recorder
  (:mod:`gatekeeper.host.recorder`) from ``share`` on: recording runs before any
  guest can attach, so a guest never sees output that is not recorded;
  ``after-split-window``/``after-new-window`` hooks pipe new panes at once;
* each join and leave starts a new *period*: every pane's pipe is re-opened
  (tmux closes the old one and opens the new one in the same command, no
  output is lost), with a marker event naming who came or went; so a visit is
  covered by exactly the files whose start lies between its join and its leave;
* failures (a recorder that cannot write, a pane whose pipe closed) write a
  ``record`` audit record; under ``record = "required"`` every guest is
  detached and loses ``server-access`` (``revoke``, reason
  ``recording_failed``), so the gatekeeper's pre-flight refuses the next
  guest until the host fixes the cause and runs ``share`` again.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import sys
import time
from typing import Final

from gatekeeper.host import control as hostlib
from gatekeeper.host import recorder
from gatekeeper.host.control import HostError, HostServer
from gatekeeper.policy.model import Policy, Session

OPT_STATE: Final = "@gatekeeper-recording"
OPT_PERIOD: Final = "@gatekeeper-recording-period"
_REC_PREFIX: Final = "@gk-rec-"
NEW_PANE_HOOKS: Final = ("after-split-window", "after-new-window")
_VERIFY_TIMEOUT: Final = 5.0


def recorder_command(policy: Policy, path: str, session: Session, start: str, mark: str) -> str:
    """The shell command ``pipe-pane`` runs: validated policy words and tmux's numeric formats.

    tmux expands formats in it and hands it to ``/bin/sh -c``: every policy
    value must match :data:`hostlib.SAFE_PATH` or the name pattern (no space,
    quote, ``#``, ``$`` or ``;``), and is quoted with :func:`shlex.quote`
    anyway. ``mark`` is built by the caller from account names and modes.
    """
    python = sys.executable
    values = [python, path, session.recordings_dir, policy.tmux_binary, session.socket]
    for value in values:
        if not hostlib.SAFE_PATH.match(value):
            raise HostError(f"cannot put {value!r} into a pipe-pane command: use a simpler path")
    if "#" in mark or "'" in mark or not mark.isprintable():
        raise HostError("bad recording marker")
    words = [
        python,
        "-I",
        "-m",
        "gatekeeper.host.recorder",
        "--policy",
        path,
        "--session",
        session.name,
        "--dir",
        session.recordings_dir,
        "--limit",
        str(session.record_limit),
        "--tmux",
        policy.tmux_binary,
        "--socket",
        session.socket,
    ]
    if start:
        words += ["--start", start]
    if mark:
        words += ["--mark", mark]
    quoted = " ".join(shlex.quote(word) for word in words)
    formats = "--size #{pane_width}x#{pane_height} #{pane_id}"
    return f"exec {quoted} {formats} >/dev/null 2>&1"


def prepare_directory(session: Session, host_uid: int) -> list[str]:
    """Create or check the recordings directory (host-owned, 0700); raise :class:`HostError`."""
    directory = session.recordings_dir
    host = hostlib.user_name(host_uid)
    fix = f"sudo install -d -o {host} -m 0700 {directory}"
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        try:
            os.mkdir(directory, 0o700)
            os.chmod(directory, 0o700)  # no setgid inherited from a share directory
        except OSError as error:
            raise HostError(f"cannot create {directory}: {error.strerror}", fix) from None
        return [f"created the recordings directory {directory} (0700)"]
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise HostError(f"{directory} is not a directory (or is a symlink)", fix)
    if st.st_uid != host_uid:
        raise HostError(
            f"{directory} is owned by {hostlib.user_name(st.st_uid)}, not {host}: "
            "recordings must be written and kept by the host",
            fix,
        )
    changes = []
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)
        changes.append(f"set the mode of {directory} to 0700 (guests must not read recordings)")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise HostError(f"{directory} is not writable by {host}", fix)
    return changes


def panes(server: HostServer) -> list[str]:
    """Every pane of the server (``%N``)."""
    result = server.run("list-panes", "-a", "-F", "#{pane_id}")
    return [p for p in result.stdout if p.startswith("%") and p[1:].isdigit()]


def start_period(
    policy: Policy, path: str, session: Session, server: HostServer, mark: str
) -> list[str]:
    """Re-open every pane's recorder for a new period; return the files, verified to exist.

    Raises :class:`HostError` if a recorder did not create its file in time.
    """
    start = recorder.stamp()
    command = recorder_command(policy, path, session, start, mark)
    names = []
    for pane in panes(server):
        server.check("pipe-pane", "-O", "-t", pane, command)
        names.append(recorder.file_name(start, session.name, pane, 0))
    server.set_option(OPT_PERIOD, start)
    deadline = time.monotonic() + _VERIFY_TIMEOUT
    directory = session.recordings_dir
    while True:
        missing = [n for n in names if not os.path.exists(os.path.join(directory, n))]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise HostError(f"the recorder did not start: {missing[0]} missing in {directory}")
        time.sleep(0.02)  # polling for the recorders' files, with a deadline
    return names


def install(policy: Policy, path: str, session: Session, server: HostServer) -> list[str]:
    """``share``: the directory, the new-pane hooks, a new period; or the removal when off."""
    if not session.recorded:
        changes = []
        if server.option(OPT_STATE) is not None:
            for hook in NEW_PANE_HOOKS:
                server.run("set-hook", "-gu", hook)
            for pane in panes(server):
                server.run("pipe-pane", "-t", pane)
            server.unset_option(OPT_STATE)
            changes.append("stopped recording (record = off)")
        return changes
    changes = prepare_directory(session, os.getuid())
    hook_command = recorder_command(policy, path, session, "", "")
    if "'" in hook_command:
        raise HostError("cannot quote the recorder command for a tmux hook")
    for hook in NEW_PANE_HOOKS:
        server.check("set-hook", "-g", hook, f"pipe-pane -O '{hook_command}'")
    try:
        files = start_period(policy, path, session, server, "share")
    except HostError as error:
        if session.record == "required":
            fail(policy, session, server, error.message)  # locks out guests granted earlier
        server.set_option(OPT_STATE, f"failed {error.message}")
        raise HostError(
            f"recording ({session.record}) cannot start: {error.message}",
            f"check that {session.recordings_dir} is writable and not full, then run share again",
        ) from None
    if server.option(OPT_STATE) != "ok":
        changes.append(f"recording every pane to {session.recordings_dir} ({session.record})")
    server.set_option(OPT_STATE, "ok")
    changes.append(f"started recording period {files[0].split('_')[0]}" if files else "")
    return [c for c in changes if c]


def remember_visit(server: HostServer, client_name: str, start: str) -> None:
    """Store the period a guest joined in (its files start at ``start``)."""
    server.set_option(_REC_PREFIX + hostlib.client_key(client_name), start)


def visit_files(session: Session, server: HostServer, client_name: str, until: str) -> list[str]:
    """The files whose period started during the visit of ``client_name`` (and forget it)."""
    key = _REC_PREFIX + hostlib.client_key(client_name)
    since = server.option(key)
    server.unset_option(key)
    if not since:
        return []
    return covering(session.recordings_dir, since, until)


def covering(directory: str, since: str, until: str) -> list[str]:
    """Recording files in ``directory`` that start in ``[since, until)`` (name order)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if n.endswith(".cast") and since <= n[:23] < until)


def on_visit_change(
    policy: Policy, path: str, session: Session, server: HostServer, mark: str
) -> tuple[list[str], str]:
    """A guest came or went: a new period; ``(files, start)``. Failures are handled here."""
    if not session.recorded or (server.option(OPT_STATE) or "").startswith("failed"):
        return [], ""
    try:
        files = start_period(policy, path, session, server, mark)
    except HostError as error:
        fail(policy, session, server, error.message)
        return [], ""
    return files, files[0][:23] if files else recorder.stamp()


def fail(policy: Policy, session: Session, server: HostServer, reason: str) -> None:
    """Recording broke: audit it; under ``required`` detach and lock out every guest."""
    server.set_option(OPT_STATE, f"failed {reason}")
    hostlib.note_error(policy, session.name, f"recording failed: {reason}")
    locked_out: list[str] = []
    if session.record == "required":
        acl = server.acl()
        users = {c.user for c in server.clients() if c.uid not in (os.getuid(), 0)}
        users |= set(acl) - {session.owner, "root"}
        for user in sorted(users):
            detached = hostlib.revoke(policy, session.name, server, user, "recording-failed")
            locked_out.append(user)
            hostlib.emit(
                policy,
                "revoke",
                user=user,
                uid=hostlib.uid_of(user),
                session=session.name,
                by=hostlib.user_name(os.getuid()),
                reason="recording_failed",
                detail=f"{reason}; {len(detached)} client(s) detached; run share after the fix",
                pid=os.getpid(),
            )
    hostlib.emit(
        policy,
        "record",
        decision="error",
        user=session.owner,
        uid=os.getuid(),
        session=session.name,
        reason="recording_failed",
        detail=reason
        + (f"; guests locked out: {', '.join(locked_out)}" if locked_out else "")
        + ("" if session.record == "required" else "; record = on: guests stay"),
        pid=os.getpid(),
    )


def recorder_failed(policy_path: str, name: str, reason: str) -> None:
    """Called by a recorder that cannot write (see :mod:`gatekeeper.host.recorder`)."""
    with contextlib.suppress(HostError, OSError, ValueError):
        policy, session = hostlib.load(policy_path, name)
        server = HostServer(policy.tmux_binary, session.socket)
        fail(policy, session, server, reason)


def check_pipes(policy: Policy, session: Session, server: HostServer) -> None:
    """Watcher tick: a pane whose pipe closed (recorder killed) is a failure."""
    if not session.recorded or server.option(OPT_STATE) != "ok":
        return
    result = server.run("list-panes", "-a", "-F", "#{pane_id} #{pane_pipe}")
    dead = [line.split(" ")[0] for line in result.stdout if line.endswith(" 0")]
    if result.returncode == 0 and dead:
        fail(policy, session, server, f"the recorder of pane {dead[0]} is gone")
