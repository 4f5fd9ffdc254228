"""``gatekeeper``: the program sshd runs for every guest login (the hot path).

The only module on the connection path that touches ``os.environ``, stdout,
stderr, signals, exit codes and ``exec``. One connection, in order:

1. ignore SIGINT/SIGQUIT/SIGTSTP until exec (corpus LOG-10);
2. read the environment once into a :class:`~gatekeeper.model.Connection`;
3. parse the request; load the policy (fail closed, exit 78);
4. decide (pure); plan the exact argv and environment (pure);
5. check the live system: a terminal, the session socket, the program;
6. write exactly one audit record (fail closed, exit 75);
7. ``os.execve`` the plan - or print one neutral line and exit.

Nothing is written to stdout except the answer to ``list``/``whoami``/
``help``: stdout may be a binary protocol (sftp, corpus SUB-08).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn

from gatekeeper import __version__, messages
from gatekeeper import request as rq
from gatekeeper.decide import (
    EX_CONFIG,
    EX_DENIED,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    AttachSession,
    Deny,
    Identity,
    Inform,
    RunProgram,
    decide,
)
from gatekeeper.plan import ExecPlan, plan

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gatekeeper.model import AuditConfig, Connection, Policy

POLICY_PATH: Final = "/etc/gatekeeper.toml"
_GUARDED_SIGNALS: Final = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)
_USAGE: Final = "usage: gatekeeper [--policy PATH]\n"


def request_text(request: rq.Request) -> str:
    """A canonical, loggable description of the parsed request."""
    match request:
        case rq.Default():
            return "default"
        case rq.Attach(session=name):
            return f"attach {name}"
        case rq.Watch(session=name):
            return f"watch {name}"
        case rq.Run(program=name):
            return f"run {name}"
        case rq.ListTargets(json=as_json):
            return "list --json" if as_json else "list"
        case rq.Whoami(json=as_json):
            return "whoami --json" if as_json else "whoami"
        case rq.Help():
            return "help"
        case rq.Malformed(reason=why):
            return f"malformed:{why}"
        case rq.Unknown():
            return "unknown"


def base_record(connection: Connection, request: rq.Request, connection_id: str) -> dict[str, Any]:
    """The fields every connect record has, before the decision is known."""
    from gatekeeper.audit import command_fields  # noqa: PLC0415 - keep import order cheap

    record: dict[str, Any] = {
        "event": "connect",
        "decision": "error",
        "reason": "",
        "detail": "",
        "exit_code": None,
        "user": connection.user,
        "uid": connection.uid,
        "person": None,
        "person_source": None,
        "key_fingerprint": connection.key_fingerprints[0] if connection.key_fingerprints else None,
        "client_addr": connection.client_addr,
        "client_port": connection.client_port,
        "server_addr": connection.server_addr,
        "server_port": connection.server_port,
        "tty": connection.tty,
        **command_fields(connection.original_command),
        "request": request_text(request),
        "grant": None,
        "session": None,
        "program": None,
        "mode": None,
        "argv": None,
        "policy_sha256": None,
        "connection_id": connection_id,
        "pid": os.getpid(),
        "version": __version__,
    }
    from gatekeeper.textsafe import escape  # noqa: PLC0415

    if record["tty"] is not None:
        record["tty"] = escape(record["tty"])
    return record


#: A policy with thousands of errors must still leave its record: the detail is
#: capped well below journald's datagram limit (SECURITY.md §26).
MAX_DETAIL: Final = 16 * 1024


def _capped(detail: str) -> str:
    if len(detail) <= MAX_DETAIL:
        return detail
    return f"{detail[:MAX_DETAIL]}... ({len(detail) - MAX_DETAIL} more characters)"


class _Outcome(Exception):  # noqa: N818 - control flow, not an error
    """Finish without exec: write ``text`` to stdout/stderr and exit ``code``."""

    def __init__(self, code: int, *, stderr: str = "", stdout: str = "") -> None:
        super().__init__(code)
        self.code, self.stderr, self.stdout = code, stderr, stdout


def _identity_fields(identity: Identity) -> dict[str, Any]:
    return {
        "person": identity.person,
        "person_source": identity.source,
        "key_fingerprint": identity.key_fingerprint,
    }


def _deny_line(code: int, ref: str, name: str = "") -> str:
    if code == EX_USAGE:
        return messages.line(messages.BAD_REQUEST, ref=ref)
    if code == EX_UNAVAILABLE and name:
        return messages.line(messages.NOT_RUNNING, ref=ref, name=name)
    # 69 without a session name: the program (or tmux) is missing on this host -
    # the admin's problem, not a session the guest could wait for.
    if code in (EX_CONFIG, EX_TEMPFAIL, EX_SOFTWARE, EX_UNAVAILABLE):
        return messages.line(messages.UNAVAILABLE, ref=ref)
    return messages.line(messages.DENIED, ref=ref)


def _live_check(
    decision: AttachSession | RunProgram, policy: Policy, connection: Connection, exe: ExecPlan
) -> tuple[str, str, int] | None:
    """Checks against the live system right before exec; ``(reason, detail, code)``."""
    if not os.access(exe.path, os.X_OK):
        return "program_missing", f"{exe.path} is not executable", EX_UNAVAILABLE
    if isinstance(decision, RunProgram):
        return None
    import pwd  # noqa: PLC0415 - only needed for attach

    from gatekeeper import fsafety, live  # noqa: PLC0415

    session = policy.sessions[decision.session]
    try:
        owner_uid = pwd.getpwnam(session.owner).pw_uid
    except KeyError:
        return "owner_unknown", f"session owner {session.owner} does not exist", EX_CONFIG
    problem = fsafety.check_socket(session.socket, owner_uid, connection.uid, os.getgroups())
    if problem is not None:
        reason, detail = problem
        code = EX_UNAVAILABLE if reason in ("socket_missing", "socket_inaccessible") else EX_DENIED
        return reason, detail, code
    state = live.probe(session.socket)
    if state != "running":
        return f"session_{state}", f"{session.socket}: {state}", EX_UNAVAILABLE
    if live.access_allowed(policy.tmux_binary, session.socket) is False:
        detail = f"{session.socket}: the host has not granted server-access (gatekeeperctl share)"
        return "session_not_shared", detail, EX_UNAVAILABLE
    return None


def _inform(decision: Inform, policy: Policy, connection: Connection) -> str:
    from gatekeeper import live  # noqa: PLC0415

    if decision.what == "help":
        return messages.HELP
    if decision.what == "whoami":
        return live.render_whoami(decision.identity, connection, as_json=decision.json)
    return live.render_list(decision.entitlements, policy, as_json=decision.json)


def _write_audit(config: AuditConfig, record: dict[str, Any]) -> bool:
    """Write the record; return False if it could not be written."""
    from gatekeeper import audit  # noqa: PLC0415

    try:
        audit.emit(config, record)
    except audit.AuditError as error:
        record["audit_error"] = str(error)
        return False
    return True


def _fallback_audit(record: dict[str, Any]) -> bool:
    """Without a usable policy, write to the default journald socket."""
    from gatekeeper.model import AuditConfig  # noqa: PLC0415

    return _write_audit(AuditConfig(), record)


def run(
    argv: Sequence[str],
    environ: dict[bytes, bytes],
    *,
    stdin_is_tty: bool,
    now: datetime | None = None,
) -> ExecPlan | _Outcome:
    """Everything but the side effects of finishing: returns what to exec or print."""
    from gatekeeper import sshenv  # noqa: PLC0415

    connection_id = os.urandom(8).hex()  # what secrets.token_hex does, without its imports
    connection = sshenv.read(environ, stdin_is_tty=stdin_is_tty)
    request = rq.parse(connection.original_command)
    record = base_record(connection, request, connection_id)

    policy_path = POLICY_PATH
    if len(argv) == 2 and argv[0] == "--policy":
        policy_path = argv[1]
    elif argv:
        record.update(decision="error", reason="bad_invocation", detail="bad gatekeeper argv")
        record["exit_code"] = EX_CONFIG
        _fallback_audit(record)
        return _Outcome(EX_CONFIG, stderr=messages.line(messages.UNAVAILABLE, ref=connection_id))

    from gatekeeper import policycache  # noqa: PLC0415

    # A root-written cache of this exact policy's validated form keeps pydantic off
    # the path; any doubt about it is a miss and the policy is validated in full.
    # Only the grants that name this account, its groups or its people are built:
    # decide() looks at no others (policycache.decode).
    policy = policycache.lookup(policy_path, relevant_to=connection)
    if policy is None:
        from gatekeeper import policy as policy_module  # noqa: PLC0415 - pydantic is heavy

        try:
            policy = policy_module.load(policy_path)
        except policy_module.PolicyError as error:
            record.update(
                decision="error", reason=f"policy_{error.kind}", detail=_capped(error.render())
            )
            record["exit_code"] = EX_CONFIG
            # The policy is unusable: deny with 78 whether or not the record could be
            # written (the root cause wins over the audit failure).
            if error.audit is not None:
                _write_audit(error.audit, record)
            else:
                _fallback_audit(record)
            return _Outcome(
                EX_CONFIG, stderr=messages.line(messages.UNAVAILABLE, ref=connection_id)
            )
        policycache.store(policy)  # as root only; not written changes nothing
    record["policy_sha256"] = policy.sha256

    decision = decide(connection, request, policy, now or datetime.now(UTC))
    record.update(_identity_fields(decision.identity))

    outcome: ExecPlan | _Outcome
    if isinstance(decision, Deny):
        record.update(decision="deny", reason=decision.reason, detail=decision.detail)
        if decision.exit_code == EX_SOFTWARE:
            record["decision"] = "error"
        record["exit_code"] = decision.exit_code
        text = _deny_line(decision.exit_code, connection_id)
        if decision.reason == "needs_tty":
            text = messages.line(messages.NEED_TTY, ref=connection_id)
        outcome = _Outcome(decision.exit_code, stderr=text)
    elif isinstance(decision, Inform):
        record.update(decision="allow", reason=f"inform_{decision.what}", exit_code=0)
        outcome = _Outcome(0, stdout=_inform(decision, policy, connection))
    else:
        exe = plan(decision, policy, connection)
        record.update(decision="allow", reason="granted", grant=decision.grant.label)
        record["argv"] = list(exe.argv)
        if isinstance(decision, AttachSession):
            record.update(session=decision.session, mode=decision.mode)
        else:
            record["program"] = decision.program
        problem = _live_check(decision, policy, connection, exe)
        if problem is None:
            outcome = exe
        else:
            reason, detail, code = problem
            record.update(decision="deny", reason=reason, detail=detail, exit_code=code)
            name = decision.session if isinstance(decision, AttachSession) else ""
            outcome = _Outcome(code, stderr=_deny_line(code, connection_id, name))

    if not _write_audit(policy.audit, record) and policy.audit.on_failure == "deny":
        return _Outcome(EX_TEMPFAIL, stderr=messages.line(messages.UNAVAILABLE, ref=connection_id))
    return outcome


def _finish(result: ExecPlan | _Outcome) -> NoReturn:
    if isinstance(result, ExecPlan):
        for signum in _GUARDED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        sys.stdout.flush()
        os.execve(result.path, list(result.argv), dict(result.env))  # noqa: S606 - the point
    if result.stdout:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
    if result.stderr:
        sys.stderr.write(result.stderr)
        sys.stderr.flush()
    os._exit(result.code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``/usr/bin/gatekeeper``; never returns."""
    for signum in _GUARDED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args, dict(os.environb), stdin_is_tty=os.isatty(0))
    except BaseException as error:  # noqa: BLE001 - fail closed on anything, even a bug
        ref = os.urandom(8).hex()
        record = {
            "event": "connect",
            "decision": "error",
            "reason": "internal_error",
            "detail": f"{type(error).__name__}",
            "exit_code": EX_SOFTWARE,
            "uid": os.getuid(),
            "connection_id": ref,
            "pid": os.getpid(),
            "version": __version__,
        }
        _fallback_audit(record)
        result = _Outcome(EX_SOFTWARE, stderr=messages.line(messages.UNAVAILABLE, ref=ref))
    try:
        _finish(result)
    except OSError:
        # execve failed after the allow record was written.
        sys.stderr.write(messages.line(messages.UNAVAILABLE, ref="exec"))
        os._exit(EX_SOFTWARE)


if __name__ == "__main__":
    main()
