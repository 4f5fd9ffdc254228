"""Unit tier: every request-borne corpus attack through the whole connection path.

Each case feeds the corpus's own ``SSH_ORIGINAL_COMMAND`` bytes (hex and
repeat forms included) to ``connect.run`` with a real root-owned policy that
*does* grant a session and two programs, so a denial comes from the request
itself. For each: no exec plan, the sysexits code, nothing on stdout (it may
be an sftp stream, SUB-08), one fixed line on stderr with no guest text in
it, and exactly one audit record, escaped to printable ASCII.

Where our SPEC deliberately differs from a case's ``must``: the corpus often
asks for argument checks (``--`` before a path, realpath + commonpath for
VIM-10, a whitelist of scp/rsync server argv, mapping ``internal-sftp`` to
``sftp-server``). The request language has no arguments at all: a guest names
a program, the policy holds its complete argv. So every one of those requests
is denied as a whole - stricter than the corpus asks for.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import NamedTuple

import gkadv_unit as gu
import gkunit
import pytest

from gatekeeper.login import audit, messages
from gatekeeper.login import entry as connect
from gatekeeper.login.plan import ExecPlan
from gatekeeper.login.textsafe import escape_bytes


class Case(NamedTuple):
    id: str
    code: int
    reason: str  # the audit record's request text prefix: "malformed:..." or "unknown"


DENIED = [
    # Parsing: shell syntax never reaches a shell; one tokenizer, no normalisation.
    Case("PARSE-01", 64, "malformed:metacharacter"),
    Case("PARSE-02", 64, "malformed:metacharacter"),
    Case("PARSE-04", 64, "malformed:metacharacter"),
    Case("PARSE-05", 64, "malformed:metacharacter"),
    Case("PARSE-07", 64, "malformed:not_printable_ascii"),
    Case("PARSE-08", 64, "malformed:metacharacter"),
    Case("PARSE-10", 64, "malformed:not_printable_ascii"),
    Case("PARSE-11", 64, "malformed:not_printable_ascii"),
    Case("PARSE-13", 64, "malformed:not_printable_ascii"),
    Case("PARSE-14", 1, "unknown"),
    Case("PARSE-16", 64, "malformed:not_utf8"),
    Case("PARSE-17", 1, "unknown"),
    Case("PARSE-20", 64, "malformed:too_long"),
    # Logging: the same denials, with the record checked below.
    Case("LOG-01", 64, "malformed:not_printable_ascii"),
    Case("LOG-03", 64, "malformed:not_printable_ascii"),
    Case("LOG-04", 64, "malformed:metacharacter"),
    Case("LOG-06", 64, "malformed:not_utf8"),
    Case("LOG-07", 64, "malformed:too_long"),
    Case("LOG-08", 64, "malformed:not_printable_ascii"),
    # Subsystems and file transfer: the subsystem command line is just a request.
    Case("SUB-01", 1, "unknown"),
    Case("SUB-02", 1, "unknown"),
    Case("SUB-04", 1, "unknown"),
    Case("SUB-07", 1, "unknown"),
    Case("SUB-08", 1, "unknown"),
    Case("SCP-01", 1, "unknown"),
    Case("SCP-02", 64, "malformed:metacharacter"),
    Case("RSYNC-02", 1, "unknown"),
    Case("RSYNC-03", 1, "unknown"),
    # Option injection into an allowed program: the guest cannot pass arguments.
    Case("VIM-01", 64, "malformed:metacharacter"),
    Case("VIM-02", 64, "malformed:metacharacter"),
    Case("VIM-08", 1, "unknown"),
    Case("VIM-10", 1, "unknown"),
    Case("VIM-11", 64, "malformed:metacharacter"),
    # tmux target syntax never reaches tmux.
    Case("TMUX-02", 64, "malformed:metacharacter"),
    Case("TMUX-04", 64, "malformed:metacharacter"),
    Case("TMUX-05", 64, "malformed:bad_name"),
    Case("TMUX-07", 64, "malformed:bad_name"),
    Case("TMUX-08", 64, "malformed:bad_name"),
    Case("TMUX-10", 64, "malformed:metacharacter"),
    Case("TMUX-11", 64, "malformed:metacharacter"),
    Case("TMUX-17", 64, "malformed:metacharacter"),
    # A well-formed name the policy does not have: tmux's prefix match is never reached.
    Case("TMUX-01", 1, "attach adm"),
]


def _case(case: Case) -> object:
    return pytest.param(case, id=case.id, marks=pytest.mark.corpus(case.id))


@pytest.mark.parametrize("case", [_case(c) for c in DENIED])
def test_corpus_request_is_denied_with_one_escaped_record(
    case: Case, corpus, policy_dir: gkunit.PolicyDir
) -> None:
    raw = gkunit.corpus_command(corpus[case.id])
    assert raw is not None
    gu.write_policy(policy_dir)
    result = gu.connect_once(policy_dir, raw)

    outcome = result.outcome
    assert not isinstance(outcome, ExecPlan), "an attack must never be exec'd"
    assert isinstance(outcome, connect._Outcome)
    assert outcome.code == case.code
    assert outcome.stdout == "", "stdout may be a binary protocol (SUB-08)"
    record = result.record  # exactly one
    ref = record["connection_id"]
    template = messages.BAD_REQUEST if case.code == 64 else messages.DENIED
    assert outcome.stderr == messages.line(template, ref=ref)

    assert record["decision"] == "deny"
    assert record["exit_code"] == case.code
    assert record["request"].startswith(case.reason)
    assert record["argv"] is None
    assert record["original_command_bytes"] == len(raw)
    # Escaped to printable ASCII, capped, the raw bytes' hash when cut (LOG-03/06/07).
    expected_text, digest = audit.cap(escape_bytes(raw), raw)
    assert record["original_command"] == expected_text
    assert gu.printable_ascii(record["original_command"])
    if digest is not None:
        assert record["original_command_sha256"] == hashlib.sha256(raw).hexdigest()
        assert len(record["original_command"]) <= audit.MAX_TEXT + 3
    # One line, one JSON object, each key once (LOG-01, LOG-04).
    (line,) = result.lines
    assert gu.printable_ascii(line)
    pairs = json.loads(line, object_pairs_hook=lambda kv: kv)
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys))


@pytest.mark.corpus("LOG-04")
def test_json_injection_stays_inside_the_string(policy_dir: gkunit.PolicyDir, corpus) -> None:
    raw = gkunit.corpus_command(corpus["LOG-04"])
    assert raw is not None
    gu.write_policy(policy_dir)
    record = gu.connect_once(policy_dir, raw).record
    assert record["decision"] == "deny"
    assert record["original_command"] == raw.decode()


@pytest.mark.corpus("LOG-07")
def test_an_unwritable_audit_sink_denies_an_allowed_request(policy_dir: gkunit.PolicyDir) -> None:
    """Fail closed: the record could not be written, so nothing is exec'd (exit 75)."""
    policy_dir.policy.write_text(
        f'version = 1\n[audit]\njournal_socket = "{policy_dir.path}/no-journal"\n'
        + gu.POLICY_BODY.format(user=gkunit.as_root_user())
    )
    policy_dir.policy.chmod(0o644)
    outcome = connect.run(
        ["--policy", str(policy_dir.policy)],
        gkunit.environ(b"run editor"),
        stdin_is_tty=True,
        now=gkunit.NOW,
    )
    assert isinstance(outcome, connect._Outcome)
    assert outcome.code == 75
    # The control: with a working sink the same request is allowed.
    gu.write_policy(policy_dir)
    assert gu.connect_once(policy_dir, b"run editor").exec_plan is not None


@pytest.mark.corpus("OK-01")
def test_the_legitimate_program_request_execs_a_fixed_argv(policy_dir: gkunit.PolicyDir) -> None:
    gu.write_policy(policy_dir)
    result = gu.connect_once(policy_dir, b"run editor", LC_PWN=b"$(id)", VIMINIT=b"!id")
    plan = result.exec_plan
    assert plan is not None
    assert plan.argv == ("/usr/bin/vim.basic", "-Z", "-R", "-u", "DEFAULTS", "--", "/my_project")
    assert set(plan.env) == {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "SHELL", "LESSSECURE",
    }  # fmt: skip
    assert plan.env["LESSSECURE"] == "1"
    assert result.record["decision"] == "allow"
    assert result.record["argv"] == list(plan.argv)


@pytest.mark.corpus("OK-02")
def test_no_command_with_a_terminal_opens_the_default(policy_dir: gkunit.PolicyDir) -> None:
    """OK-02 at the unit tier: the default grant is chosen, and audited (the socket is absent)."""
    gu.write_policy(policy_dir)
    result = gu.connect_once(policy_dir, None)
    record = result.record
    assert record["request"] == "default"
    assert record["session"] == "shared"
    assert record["mode"] == "read-only"
    assert record["argv"][-3:] == ["-r", "-t", "=shared"]
    # No host session in the unit tier (and root's own checks): denied before exec.
    assert record["decision"] == "deny"
    assert result.exec_plan is None


@pytest.mark.corpus("TMUX-17")
@pytest.mark.parametrize(
    ("path", "session"),
    [
        ("/etc/gatekeeper.toml", "#(touch /tmp/x)"),
        ("/etc/#(id).toml", "shared"),
        ("/etc/gate keeper.toml", "shared"),
        ("/etc/gatekeeper.toml", "shared;new-window"),
        ("/etc/gatekeeper.toml", "shared'"),
    ],
)
def test_host_hooks_expand_nothing_but_the_client_name(path: str, session: str) -> None:
    """TMUX-17, host side: the join/leave hooks ``share`` installs are run-shell strings
    that tmux expands as the host. The only format in them is ``#{q:hook_client}`` (the
    client's tty, named by the kernel, shell-quoted by tmux); a policy path or session
    name that could carry a format, a quote or a ``;`` is refused outright."""
    from gatekeeper.host import control as hostlib  # noqa: PLC0415 - host-side code, only here

    good = hostlib.hook_command(["/usr/bin/gatekeeperctl"], "join", "/etc/gatekeeper.toml", "s")
    assert re.findall(r"#\{[^}]*\}", good) == ["#{q:hook_client}"]
    assert "#(" not in good
    with pytest.raises(hostlib.HostError):
        hostlib.hook_command(["/usr/bin/gatekeeperctl"], "join", path, session)


@pytest.mark.corpus("LOG-10")
def test_the_launcher_ignores_terminal_signals_before_importing_the_gatekeeper() -> None:
    """LOG-10, the window before ``main()``: importing the gatekeeper takes ~0.1 s, and a
    Ctrl-C there would print a traceback (package paths) to the guest and leave no record.
    The installed launcher (and the one packaging renders) ignores SIGINT, SIGQUIT and
    SIGTSTP before its first import of the gatekeeper."""
    import ast  # noqa: PLC0415 - only here

    import gktest  # noqa: PLC0415 - the installed launcher's path

    from gatekeeper import launcher  # noqa: PLC0415

    for text in (launcher.render("/usr/bin/python3"), gktest.GATEKEEPER.read_text()):
        body = ast.parse(text).body
        first_import = next(
            i
            for i, node in enumerate(body)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gatekeeper")
        )
        before = ast.unparse(ast.Module(body=body[:first_import], type_ignores=[]))
        for name in ("SIGINT", "SIGQUIT", "SIGTSTP"):
            assert f"signal.{name}" in before, name
        assert "signal.signal(_signum, signal.SIG_IGN)" in before
