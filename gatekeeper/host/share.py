"""``gatekeeperctl share``: (host) start or re-apply a shared session (SPEC §6).

Run by the session's owner. Everything the hand-made recipe gets wrong on
tmux >= 3.3 (SECURITY.md §3) is applied, and re-applied on every run:

1. the socket directory: owned by the host or root, the share group, no
   access for others, 0750 (setgid) or 1770 (sticky) - or a refusal with the
   command that fixes it;
2. the session on its *own* tmux server at the policy's socket, with
   ``update-environment`` empty; the socket in the share group, 0660;
3. ``server-access`` for exactly the policy's guests (``-ar``/``-aw``),
   checked with ``server-access -l``; grants the policy no longer gives are
   removed (which detaches those guests);
4. on tmux < 3.7 the ``prefix ( ) L`` bindings refuse read-only clients;
5. ``client-attached``/``client-detached`` hooks that write ``join`` and
   ``leave`` records (hidden subcommand ``_hook``);
6. a watcher process (hidden subcommand ``_watch``) that repairs the socket
   after ``SIGUSR1`` and revokes guests at their grant's ``expires``.

The run prints what changed, writes a ``share`` audit record and, with
``--attach``, attaches the host.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from gatekeeper.cli.common import add_policy_option, policy_path
from gatekeeper.exitcodes import EX_USAGE
from gatekeeper.host import control as hostlib
from gatekeeper.host import recording
from gatekeeper.host.control import HostError, HostServer
from gatekeeper.login import fsafety, live
from gatekeeper.policy.model import Mode, Policy, Session


@dataclass
class ShareReport:
    """What one ``share`` run found and did."""

    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    access: dict[str, Mode] = field(default_factory=dict)
    audit_error: str | None = None


def _start_or_find_server(session: Session, uid: int, server: HostServer) -> list[str]:
    state = live.probe(session.socket)
    if state == "running":
        owner = os.lstat(session.socket).st_uid
        if owner != uid:
            raise HostError(
                f"{session.socket} is a tmux server of {hostlib.user_name(owner)}, not yours: "
                "someone may have planted it",
                f"stop that server, remove {session.socket}, and run share again",
            )
        if server.run("has-session", "-t", f"={session.target}").returncode == 0:
            return []
        server.check("new-session", "-d", "-s", session.target)
        return [f"created session {session.target}"]
    if state == "inaccessible":
        raise HostError(f"{session.socket} cannot be reached")
    if state == "stale":
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(session.socket).st_uid != uid:
                raise HostError(f"a stale {session.socket} belongs to someone else")
            os.unlink(session.socket)
    server.check("new-session", "-d", "-s", session.target)
    return [f"started a tmux server at {session.socket} with session {session.target}"]


def _apply_settings(
    server: HostServer, session: Session, path: str, version: tuple[int, int]
) -> tuple[list[str], list[str]]:
    changes: list[str] = []
    warnings: list[str] = []
    current = server.run("show-options", "-gv", "update-environment").stdout
    if any(line.strip() for line in current):
        server.check("set-option", "-g", "update-environment", "")
        changes.append("set update-environment empty (no guest variables reach the session)")
    ctl = hostlib.ctl_command()
    hooks = {
        "client-attached": hostlib.hook_command(ctl, "join", path, session.name),
        "client-detached": hostlib.hook_command(ctl, "leave", path, session.name),
    }
    signature = "|".join(hooks.values())
    for hook, command in hooks.items():
        server.check("set-hook", "-g", hook, command)
    if server.option("@gatekeeper-hooks") != signature:
        server.set_option("@gatekeeper-hooks", signature)
        changes.append("installed the join/leave audit hooks")
    if version < hostlib.READ_ONLY_FIXED:
        guarded = []
        for key, command in hostlib.SWITCH_KEYS.items():
            line = " ".join(server.run("list-keys", "-T", "prefix", key).stdout)
            if "client_readonly" not in line:
                server.check(*hostlib.guard_binding(key, command))
                guarded.append(key)
        if guarded:
            changes.append(f"made prefix {' '.join(guarded)} refuse read-only clients")
        warnings.extend(
            f"binding lets a read-only guest leave the session: {line.strip()}"
            for line in server.run("list-keys").stdout
            if ("switch-client" in line or "attach-session" in line)
            and "client_readonly" not in line
        )
    for option, value in (
        (hostlib.OPT_SESSION, session.name),
        (hostlib.OPT_POLICY, path),
    ):
        if server.option(option) != value:
            server.set_option(option, value)
    error = server.option(hostlib.OPT_ERROR)
    if error:
        warnings.append(f"since the last share: {error}")
        server.unset_option(hostlib.OPT_ERROR)
    others = [
        name
        for name in server.run("list-sessions", "-F", "#{session_name}").stdout
        if name != session.target
    ]
    if others:
        warnings.append(
            f"this server also runs session(s) {', '.join(others)}: guests of "
            f"{session.target} must not see them; use one server per shared session"
        )
    return changes, warnings


def _apply_access(
    policy: Policy, server: HostServer, session: Session, wanted: dict[str, Mode]
) -> list[str]:
    changes: list[str] = []
    current = server.acl()
    for user, mode in sorted(wanted.items()):
        if user not in current:
            hostlib.set_access(server, user, mode, new=True)
            changes.append(f"granted {user} {mode}")
        elif current[user] != mode:
            hostlib.set_access(server, user, mode, new=False)
            changes.append(f"changed {user} to {mode}")
    for user in sorted(set(current) - set(wanted) - {session.owner, "root"}):
        detached = hostlib.revoke(policy, session.name, server, user, "kicked")
        changes.append(f"removed {user} (no longer granted; {len(detached)} client(s) detached)")
        hostlib.emit(
            policy,
            "revoke",
            user=user,
            uid=hostlib.uid_of(user),
            session=session.name,
            mode=current[user],
            by=hostlib.user_name(os.getuid()),
            reason="not_granted",
            detail=f"share: the policy no longer grants {user}",
            pid=os.getpid(),
        )
    if server.option(hostlib.OPT_KICKED):
        server.unset_option(hostlib.OPT_KICKED)
        changes.append("cleared earlier kicks")
    final = server.acl()
    final.pop(session.owner, None)
    final.pop("root", None)
    if final != wanted:
        raise HostError(f"server-access -l shows {final}, expected {wanted}")
    return changes


def _watcher_pid(server: HostServer, name: str) -> int | None:
    value = server.option(hostlib.OPT_WATCHER) or ""
    if not value.isdigit():
        return None
    pid = int(value)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return None
    except OSError:
        return None
    return pid if b"_watch" in argv and name.encode() in argv else None


def _ensure_watcher(
    server: HostServer, policy: Policy, path: str, session: Session, group: str
) -> list[str]:
    pid = _watcher_pid(server, session.name)
    if pid is not None and server.option(hostlib.OPT_POLICY_SHA) == policy.sha256:
        return []
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the old watcher to exit
    argv = [*hostlib.ctl_command(), "_watch", "--policy", path, "--group", group, session.name]
    try:
        # Its own session, no inherited stdio: it outlives this command (and --attach).
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
    except OSError as error:
        raise HostError(f"could not start the watcher: {error}") from None
    new_pid = str(process.pid)
    server.set_option(hostlib.OPT_WATCHER, new_pid)
    server.set_option(hostlib.OPT_POLICY_SHA, policy.sha256)
    return ["restarted the expiry/socket watcher" if pid else "started the expiry/socket watcher"]


def _verify_guests(session: Session, uid: int, wanted: dict[str, Mode]) -> list[str]:
    """Ask the gatekeeper's own socket check, for each guest."""
    warnings = []
    for user in sorted(wanted):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        gids = os.getgrouplist(user, entry.pw_gid)
        problem = fsafety.check_socket(session.socket, uid, entry.pw_uid, gids)
        if problem is not None and problem[0] != "socket_inaccessible":
            warnings.append(f"the gatekeeper would refuse {user}: {problem[1]}")
    return warnings


def apply_share(policy: Policy, path: str, session: Session) -> ShareReport:
    """Bring the shared session in line with the policy; see the module docstring."""
    uid = hostlib.require_owner(session)
    if not hostlib.SAFE_PATH.match(path):
        raise HostError(f"the policy path {path!r} cannot be used in tmux hooks")
    version = hostlib.tmux_version(policy.tmux_binary)
    if version < hostlib.MINIMUM:
        raise HostError(f"{policy.tmux_binary} is tmux {version[0]}.{version[1]}; share needs 3.3+")
    group = hostlib.socket_group(policy, session.name)
    if group is None:
        raise HostError(
            "cannot tell which group the guests share: name one group in the session's "
            "grants (groups = [...]) or have root create the directory in that group",
            f"sudo install -d -o {session.owner} -g GROUP -m 2750 "
            + os.path.dirname(session.socket),
        )
    report = ShareReport()
    report.access = hostlib.access_at(policy, session.name, datetime.now(UTC))
    report.warnings += hostlib.warnings_for(policy, session.name, group)
    report.changes += hostlib.prepare_directory(session, group, uid)
    server = HostServer(policy.tmux_binary, session.socket)
    report.changes += _start_or_find_server(session, uid, server)
    changes, warnings = _apply_settings(server, session, path, version)
    report.changes += changes
    report.warnings += warnings
    gid = grp.getgrnam(group).gr_gid
    fixed = hostlib.repair_socket(session.socket, uid, gid)
    if fixed:
        report.changes.append(fixed)
    if os.lstat(session.socket).st_gid != gid:
        raise HostError(
            f"{session.socket} is not in group {group}: guests cannot connect",
            f"sudo chgrp {group} {os.path.dirname(session.socket)} && "
            f"sudo chmod 2750 {os.path.dirname(session.socket)}",
        )
    report.changes += recording.install(policy, path, session, server)
    report.changes += _apply_access(policy, server, session, report.access)
    report.changes += _ensure_watcher(server, policy, path, session, group)
    report.warnings += _verify_guests(session, uid, report.access)
    report.audit_error = hostlib.emit(
        policy,
        "share",
        user=session.owner,
        uid=uid,
        session=session.name,
        by=hostlib.user_name(uid),
        changes=report.changes,
        detail="; ".join(f"{u} {m}" for u, m in sorted(report.access.items())) or "no guests",
        pid=os.getpid(),
    )
    return report


def _print_report(session: Session, report: ShareReport) -> None:
    print(f"share: session {session.name!r} (tmux {session.target!r}) at {session.socket}")
    if report.changes:
        for change in report.changes:
            print(f"  changed: {change}")
    else:
        print("  no changes: everything was already in place")
    for user, mode in sorted(report.access.items()):
        print(f"  guest: {user} ({mode})")
    if not report.access:
        print("  guest: none (no grant gives anyone access right now)")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    if report.audit_error:
        print(f"  warning: the share audit record was not written: {report.audit_error}")
    print(f"  guests connect with: ssh -t USER@HOST attach {session.name}")


def fail(command: str, error: HostError) -> int:
    """Print a :class:`HostError` and its fix; return exit code 1."""
    print(f"gatekeeperctl {command}: {error.message}", file=sys.stderr)
    if error.fix:
        print(f"  fix: {error.fix}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    path = policy_path(args)
    try:
        policy, session = hostlib.load(path, args.session)
        report = apply_share(policy, path, session)
    except HostError as error:
        return fail("share", error)
    _print_report(session, report)
    sys.stdout.flush()
    if args.attach:
        _attach(policy, session)
    return 0


def _attach(policy: Policy, session: Session) -> NoReturn:
    binary = policy.tmux_binary
    os.execv(  # noqa: S606 - the host attaches to their own server; no shell involved
        binary, [binary, "-S", session.socket, "attach-session", "-t", f"={session.target}"]
    )


def _run_hook(args: argparse.Namespace) -> int:
    """``_hook join|leave``: run by tmux as the host; silent, never raises."""
    if not hostlib.CLIENT_NAME.match(args.client):
        return EX_USAGE
    try:
        policy, _session = hostlib.load(policy_path(args), args.session)
    except HostError:
        return 1
    try:
        if args.kind == "join":
            hostlib.on_join(policy, args.session, args.client)
        else:
            hostlib.on_leave(policy, args.session, args.client)
    except (HostError, OSError, ValueError) as error:
        hostlib.note_error(policy, args.session, f"{args.kind} hook failed: {error}")
        return 1
    return 0


def _run_watch(args: argparse.Namespace) -> int:
    """``_watch``: the per-session watcher that ``share`` starts (see :func:`hostlib.watch`)."""
    try:
        policy, session = hostlib.load(policy_path(args), args.session)
        gid = grp.getgrnam(args.group).gr_gid
    except (HostError, KeyError) as error:
        print(f"gatekeeperctl _watch: {error}", file=sys.stderr)
        return 1
    return hostlib.watch(policy, session.name, gid)


def register(subparsers: Any) -> None:
    """Add ``share`` and the hidden ``_hook`` and ``_watch`` it installs."""
    parser = subparsers.add_parser(
        "share",
        help="(host) start or re-apply a shared session",
        description="Start SESSION on its own tmux server at the policy's socket with "
        "safe modes, server-access grants for exactly the policy's guests, audit hooks "
        "and revocation at expiry. Idempotent: run it again after editing the policy.",
    )
    parser.add_argument("session", metavar="SESSION", help="session name from the policy")
    parser.add_argument("--attach", action="store_true", help="attach to the session afterwards")
    add_policy_option(parser)
    parser.set_defaults(handler=_run)

    # Hidden (no help=): run by tmux hooks and by share itself, as the host.
    hook = subparsers.add_parser("_hook")
    hook.add_argument("kind", choices=("join", "leave"))
    add_policy_option(hook)
    hook.add_argument("session")
    hook.add_argument("client")
    hook.set_defaults(handler=_run_hook)

    watcher = subparsers.add_parser("_watch")
    add_policy_option(watcher)
    watcher.add_argument("--group", required=True)
    watcher.add_argument("session")
    watcher.set_defaults(handler=_run_watch)
