"""``gatekeeper``: the program sshd runs for every guest login (the hot path).

The only module on the connection path that touches ``os.environ``, stdout,
stderr, signals, exit codes and ``exec``. :func:`run` reads top to bottom,
one stage module per line:

1. read the environment once into a Connection (:mod:`~gatekeeper.login.sshenv`);
2. parse the request (:mod:`~gatekeeper.login.request`);
3. load the policy, fail closed with exit 78 (:mod:`~gatekeeper.login.load`);
4. decide, pure (:mod:`~gatekeeper.login.decide`);
5. plan the exact argv and environment, pure (:mod:`~gatekeeper.login.plan`);
6. check the live system: program, socket, server (:mod:`~gatekeeper.login.preflight`);
7. build the one record from those stages, pure (:mod:`~gatekeeper.login.record`);
8. write it, fail closed with exit 75 (:mod:`~gatekeeper.login.audit`);
9. ``os.execve`` the plan - or print one neutral line and exit (here).

SIGINT/SIGQUIT/SIGTSTP are ignored until exec (corpus LOG-10). Nothing is
written to stdout except the answer to ``list``/``whoami``/``help``: stdout
may be a binary protocol (sftp, corpus SUB-08).
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn

from gatekeeper.exitcodes import EX_OK, EX_SOFTWARE, EX_TEMPFAIL
from gatekeeper.login import messages
from gatekeeper.login import request as rq
from gatekeeper.login.decide import AttachSession, Deny, Inform, RunProgram, decide
from gatekeeper.login.plan import ExecPlan, plan
from gatekeeper.login.record import Failure, Stages, build
from gatekeeper.policy.model import DEFAULT_PATH, AuditConfig, Policy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gatekeeper.policy.model import Connection

_GUARDED_SIGNALS: Final = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)
_USAGE: Final = "usage: gatekeeper [--policy PATH]\n"


class _Outcome(Exception):  # noqa: N818 - control flow, not an error
    """Finish without exec: write ``text`` to stdout/stderr and exit ``code``."""

    def __init__(self, code: int, *, stderr: str = "", stdout: str = "") -> None:
        super().__init__(code)
        self.code, self.stderr, self.stdout = code, stderr, stdout


def run(
    argv: Sequence[str],
    environ: dict[bytes, bytes],
    *,
    stdin_is_tty: bool,
    now: datetime | None = None,
) -> ExecPlan | _Outcome:
    """One login, stage by stage: the plan to exec, or what to print and the exit code."""
    from gatekeeper.login import load, sshenv  # noqa: PLC0415 - after the signal guard

    connection_id = os.urandom(8).hex()  # what secrets.token_hex does, without its imports
    connection = sshenv.read(environ, stdin_is_tty=stdin_is_tty)
    request = rq.parse(connection.original_command)
    stages = Stages(connection_id, connection.uid, connection, request)
    policy_path = _policy_path(argv)
    if policy_path is None:
        return _failed(replace(stages, failure=Failure.bad_invocation()), AuditConfig())
    policy = load.policy(policy_path, connection)
    if not isinstance(policy, Policy):
        # The policy is unusable: deny with 78 whether or not the record could be
        # written (the root cause wins over the audit failure).
        failure = Failure.policy(policy.kind, policy.render())
        return _failed(replace(stages, failure=failure), policy.audit or AuditConfig())
    decision = decide(connection, request, policy, now or datetime.now(UTC))
    exe = refused = None
    if isinstance(decision, AttachSession | RunProgram):
        from gatekeeper.login import preflight  # noqa: PLC0415 - only what may exec needs it

        exe = plan(decision, policy, connection)
        refused = preflight.check(decision, policy, connection, exe)
    stages = replace(
        stages, policy_sha256=policy.sha256, decision=decision, plan=exe, preflight=refused
    )
    record = build(stages, pid=os.getpid())
    answer = _answer(stages, policy, connection)
    if not _write(policy.audit, record) and policy.audit.on_failure == "deny":
        return _Outcome(EX_TEMPFAIL, stderr=messages.line(messages.UNAVAILABLE, ref=connection_id))
    return answer


def _policy_path(argv: Sequence[str]) -> str | None:
    """The policy file from ``--policy PATH``; ``None`` for any other argv."""
    if not argv:
        return DEFAULT_PATH
    if len(argv) == 2 and argv[0] == "--policy":
        return argv[1]
    return None


def _answer(stages: Stages, policy: Policy, connection: Connection) -> ExecPlan | _Outcome:
    """What the guest gets: the plan, the answer to an inform request, or one line."""
    decision, ref = stages.decision, stages.connection_id
    if isinstance(decision, Inform):
        return _Outcome(EX_OK, stdout=_inform(decision, policy, connection))
    if isinstance(decision, Deny):
        needs_tty = decision.reason == "needs_tty"
        line = messages.denial(decision.exit_code, ref=ref, needs_tty=needs_tty)
        return _Outcome(decision.exit_code, stderr=line)
    if stages.preflight is None and stages.plan is not None:
        return stages.plan
    code = stages.preflight.exit_code if stages.preflight is not None else EX_SOFTWARE
    name = decision.session if isinstance(decision, AttachSession) else ""
    return _Outcome(code, stderr=messages.denial(code, ref=ref, name=name))


def _inform(decision: Inform, policy: Policy, connection: Connection) -> str:
    from gatekeeper.login import live  # noqa: PLC0415

    if decision.what == "help":
        return messages.HELP
    if decision.what == "whoami":
        return live.render_whoami(decision.identity, connection, as_json=decision.json)
    return live.render_list(decision.entitlements, policy, as_json=decision.json)


def _failed(stages: Stages, config: AuditConfig) -> _Outcome:
    """Write the record of a login that failed before its decision; deny with its code."""
    assert stages.failure is not None  # noqa: S101 - callers pass a failure; mypy narrows
    _write(config, build(stages, pid=os.getpid()))
    ref = stages.connection_id
    return _Outcome(stages.failure.exit_code, stderr=messages.line(messages.UNAVAILABLE, ref=ref))


def _write(config: AuditConfig, record: dict[str, Any]) -> bool:
    """Write the record; ``False`` if it could not be written."""
    from gatekeeper.login import audit  # noqa: PLC0415

    try:
        audit.emit(config, record)
    except audit.AuditError:
        return False
    return True


def _finish(result: ExecPlan | _Outcome) -> NoReturn:
    if isinstance(result, ExecPlan):
        for signum in _GUARDED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        sys.stdout.flush()
        if result.notice:
            sys.stderr.write(result.notice)
            sys.stderr.flush()
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
        stages = Stages(ref, os.getuid(), failure=Failure.internal(error))
        _write(AuditConfig(), build(stages, pid=os.getpid()))
        result = _Outcome(EX_SOFTWARE, stderr=messages.line(messages.UNAVAILABLE, ref=ref))
    try:
        _finish(result)
    except OSError:
        # execve failed after the allow record was written.
        sys.stderr.write(messages.line(messages.UNAVAILABLE, ref="exec"))
        os._exit(EX_SOFTWARE)


if __name__ == "__main__":
    main()
