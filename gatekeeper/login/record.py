"""Stage: the one audit record of a connection, built once from the stages' frozen values.

:func:`build` is pure: the same :class:`Stages` always give the same record.
Nothing patches a record afterwards; the login path, its error path in
``main`` and ``gatekeeperctl explain`` all call :func:`build`, so what explain
prints is what the login would write. Field names are :data:`audit.FIELDS`,
reasons :data:`audit.REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from gatekeeper import __version__
from gatekeeper.exitcodes import EX_CONFIG, EX_OK, EX_SOFTWARE
from gatekeeper.login import request as rq
from gatekeeper.login.audit import command_fields
from gatekeeper.login.decide import AttachSession, Deny, Inform, RunProgram
from gatekeeper.login.textsafe import escape

if TYPE_CHECKING:
    from gatekeeper.login.decide import Decision
    from gatekeeper.login.plan import ExecPlan
    from gatekeeper.login.preflight import Refused
    from gatekeeper.policy.model import Connection

#: A policy with thousands of errors must still leave its record: the detail is
#: capped well below journald's datagram limit (SECURITY.md §26).
MAX_DETAIL: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class Failure:
    """The login ended before a decision: bad argv, an unusable policy, a bug."""

    reason: str
    detail: str
    exit_code: int

    @classmethod
    def bad_invocation(cls) -> Failure:
        """``gatekeeper`` was started with arguments other than ``--policy PATH``."""
        return cls("bad_invocation", "bad gatekeeper argv", EX_CONFIG)

    @classmethod
    def policy(cls, kind: str, rendered: str) -> Failure:
        """The policy is missing, unsafe, unreadable or invalid (``kind``)."""
        return cls(f"policy_{kind}", capped(rendered), EX_CONFIG)

    @classmethod
    def containment(cls, error: BaseException) -> Failure:
        """Enforcing containment failed after the allow record (exit 70)."""
        return cls("containment_failed", str(error), EX_SOFTWARE)

    @classmethod
    def internal(cls, error: BaseException) -> Failure:
        """A bug: only the exception's type is recorded (its text may hold guest input)."""
        return cls("internal_error", type(error).__name__, EX_SOFTWARE)


@dataclass(frozen=True, slots=True)
class Stages:
    """What the stages of one login produced, as far as it got.

    ``connection`` is ``None`` only on ``main``'s error path, when even reading
    the environment may have failed: the record then says no more than ``uid``.
    """

    connection_id: str
    uid: int
    connection: Connection | None = None
    request: rq.Request | None = None
    policy_sha256: str | None = None
    decision: Decision | None = None
    plan: ExecPlan | None = None
    preflight: Refused | None = None
    failure: Failure | None = None


def capped(detail: str) -> str:
    """``detail`` cut at :data:`MAX_DETAIL`, saying how much was cut."""
    if len(detail) <= MAX_DETAIL:
        return detail
    return f"{detail[:MAX_DETAIL]}... ({len(detail) - MAX_DETAIL} more characters)"


def describe(request: rq.Request) -> str:
    """A canonical, loggable description of the parsed request (the ``request`` field)."""
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


def _outcome(stages: Stages) -> dict[str, Any]:
    """``decision``, ``reason``, ``detail``, ``exit_code``: what became of the login."""
    decision = stages.decision
    if stages.failure is not None or decision is None:
        failure = stages.failure or Failure("internal_error", "no decision", EX_SOFTWARE)
        return {
            "decision": "error",
            "reason": failure.reason,
            "detail": failure.detail,
            "exit_code": failure.exit_code,
        }
    if isinstance(decision, Deny):
        verdict = "error" if decision.exit_code == EX_SOFTWARE else "deny"
        return {
            "decision": verdict,
            "reason": decision.reason,
            "detail": decision.detail,
            "exit_code": decision.exit_code,
        }
    if isinstance(decision, Inform):
        return {
            "decision": "allow",
            "reason": f"inform_{decision.what}",
            "detail": "",
            "exit_code": EX_OK,
        }
    refused = stages.preflight
    if refused is not None:
        return {
            "decision": "deny",
            "reason": refused.reason,
            "detail": refused.detail,
            "exit_code": refused.exit_code,
        }
    return {"decision": "allow", "reason": "granted", "detail": "", "exit_code": None}


def _target(decision: Decision | None, plan: ExecPlan | None) -> dict[str, Any]:
    """``grant``, ``session``, ``program``, ``mode``, ``argv`` of an allowed request."""
    fields: dict[str, Any] = dict.fromkeys(
        ("grant", "session", "program", "mode", "contained", "argv")
    )
    if isinstance(decision, AttachSession | RunProgram):
        fields["grant"] = decision.grant.label
        fields["argv"] = list(plan.argv) if plan is not None else None
    if isinstance(decision, AttachSession):
        fields.update(session=decision.session, mode=decision.mode)
    elif isinstance(decision, RunProgram):
        fields["program"] = decision.program
        fields["contained"] = plan.contained if plan is not None else None
    return fields


def build(stages: Stages, *, pid: int) -> dict[str, Any]:
    """The ``connect`` record for these stages (field order as documented)."""
    outcome = _outcome(stages)
    connection = stages.connection
    tail = {"connection_id": stages.connection_id, "pid": pid, "version": __version__}
    if connection is None:
        return {"event": "connect", **outcome, "uid": stages.uid, **tail}
    decision = stages.decision
    keys = connection.key_fingerprints
    person, key = None, keys[0] if keys else None
    source = None
    if decision is not None:
        person, key = decision.identity.person, decision.identity.key_fingerprint
        source = decision.identity.source
    request = describe(stages.request) if stages.request is not None else None
    return {
        "event": "connect",
        **outcome,
        "user": connection.user,
        "uid": connection.uid,
        "person": person,
        "person_source": source,
        "key_fingerprint": key,
        "client_addr": connection.client_addr,
        "client_port": connection.client_port,
        "server_addr": connection.server_addr,
        "server_port": connection.server_port,
        "tty": escape(connection.tty) if connection.tty is not None else None,
        **command_fields(connection.original_command),
        "request": request,
        **_target(decision, stages.plan),
        "policy_sha256": stages.policy_sha256,
        **tail,
    }
