"""The connection stage for ``run PROGRAM``: the program rules, the pin, containment.

Called by :func:`gatekeeper.login.entry.run` after the live checks and before the
audit record, so every denial here is audited like any other (exit 78, the
guest sees the neutral line). :mod:`gatekeeper.login.contain` (ctypes) is imported
only for a contained program: an uncontained login pays nothing for it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from gatekeeper.exitcodes import EX_CONFIG, EX_UNAVAILABLE
from gatekeeper.login.plan import ExecPlan as ExecPlanType
from gatekeeper.policy import programs as programrules

if TYPE_CHECKING:
    from gatekeeper.login.decide import RunProgram
    from gatekeeper.login.plan import ExecPlan
    from gatekeeper.login.preflight import Refused
    from gatekeeper.policy.model import Connection, Policy

#: Devices a contained program may write besides its ``write`` paths.
DEVICES: Final = ("/dev/null", "/dev/tty")


def terminals() -> list[str]:
    """The guest's own terminal (from the kernel, not ``SSH_TTY``) and the safe devices."""
    found = list(DEVICES)
    found.extend(os.ttyname(fd) for fd in (0, 1, 2) if os.isatty(fd))
    return list(dict.fromkeys(found))


def check(
    decision: RunProgram, policy: Policy, connection: Connection, exe: ExecPlan
) -> Refused | None:
    """What :func:`prepare` would refuse, without keeping anything (``explain --live``)."""
    out = prepare(decision, policy, connection, exe)
    if isinstance(out, ExecPlanType):
        if out.containment is not None:
            os.close(out.containment.ruleset_fd)
        return None
    return out


def prepare(
    decision: RunProgram, policy: Policy, connection: Connection, exe: ExecPlan
) -> ExecPlan | Refused:
    """The plan to exec (the resolved path, containment ready), or why not."""
    from gatekeeper.login.preflight import Refused  # noqa: PLC0415 - a layer above

    program = policy.programs[decision.program]
    problem = programrules.login_problem(policy, connection, program, decision.grant)
    if problem is not None:
        reason, detail = problem
        if reason == "uncontained_program":
            return Refused("uncontained_program", detail, EX_CONFIG)
        return Refused("program_unsafe", detail, EX_CONFIG)
    current = programrules.pin_of(program.argv[0])
    if current is None:
        detail = f"{program.argv[0]} does not resolve to a file"
        return Refused("program_missing", detail, EX_UNAVAILABLE)
    if program.pin is not None and current != program.pin:
        detail = (
            f"{program.argv[0]} now resolves to {current[0]} (inode {current[2]}, uid "
            f"{current[3]}, mode {current[4]:o}); checked was {program.pin[0]} (inode "
            f"{program.pin[2]}, uid {program.pin[3]}, mode {program.pin[4]:o}): "
            "run gatekeeperctl check"
        )
        return Refused("program_changed", detail, EX_CONFIG)
    resolved = replace(exe, path=current[0])
    if not program.sandbox:
        return resolved
    from gatekeeper.login import contain  # noqa: PLC0415 - ctypes only for contained programs

    try:
        prepared = contain.prepare(current[0], program.write, terminals())
    except (contain.ContainmentError, OSError) as error:
        return Refused("containment_unavailable", f"{program.argv[0]}: {error}", EX_CONFIG)
    return replace(resolved, containment=prepared)
