"""The allowed-program rules: exact texts in ``check``, and the same verdict at login."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator

import gkunit
import pytest

from gatekeeper.exitcodes import EX_CONFIG
from gatekeeper.login import entry as connect
from gatekeeper.policy import check
from gatekeeper.policy import programs as programrules
from gatekeeper.policy.loader import Problem
from gatekeeper.policy.model import Connection, Grant, Policy, Program, Session


@pytest.fixture
def policy_dir() -> Iterator[gkunit.PolicyDir]:
    yield from gkunit.policy_dir()


ME = pwd.getpwuid(os.getuid()).pw_name
VIM_REAL = os.path.realpath("/usr/bin/vim")
FIX = "give the program its own guest account that cannot attach, or set programs.{}.sandbox = true"


def policy(programs: dict[str, Program], grants: list[Grant]) -> Policy:
    return Policy(
        sessions={"s": Session("s", "/run/x.sock", ME, "s")},
        programs=programs,
        grants=tuple(grants),
    )


LESS = Program("pager", ("/usr/bin/less", "--", "/etc/motd"))


def test_an_attaching_account_with_an_uncontained_program_is_an_error() -> None:
    pol = policy(
        {"pager": LESS},
        [
            Grant(0, users=frozenset({"pair"}), session="s"),
            Grant(1, users=frozenset({"pair"}), program="pager"),
        ],
    )
    assert check.containment_errors(pol) == [
        Problem(
            "grant[1]",
            "program 'pager' is not contained, but grant[0] lets the same account attach to "
            "session 's' (both name user 'pair'): a process the guest controls can drive the "
            "session through tmux control mode as its owner, read-only or not; "
            + FIX.format("pager"),
        )
    ]


def test_contained_programs_pass_for_attaching_accounts() -> None:
    contained = Program("pager", LESS.argv, sandbox=True)
    pol = policy(
        {"pager": contained},
        [
            Grant(0, users=frozenset({"pair"}), session="s"),
            Grant(1, users=frozenset({"pair"}), program="pager"),
        ],
    )
    assert check.containment_errors(pol) == []


@pytest.mark.parametrize(
    ("attach", "run", "why"),
    [
        (
            Grant(0, groups=frozenset({"g"}), session="s"),
            Grant(1, groups=frozenset({"g"}), program="pager"),
            "both name group 'g'",
        ),
        (
            Grant(0, people=frozenset({"bob"}), session="s"),
            Grant(1, users=frozenset({"x"}), program="pager"),
            "a person's key may be on any account, and tmux access belongs to the account",
        ),
        (
            Grant(0, users=frozenset({"x"}), session="s"),
            Grant(1, people=frozenset({"bob"}), program="pager"),
            "a person's key may be on any account, and tmux access belongs to the account",
        ),
        (
            Grant(0, groups=frozenset({"g"}), session="s"),
            Grant(1, users=frozenset({"nosuchuser-gk"}), program="pager"),
            "user 'nosuchuser-gk' does not exist yet and may join group 'g'",
        ),
        (
            Grant(0, groups=frozenset({"nosuchgroup-gk"}), session="s"),
            Grant(1, groups=frozenset({"root"}), program="pager"),
            "group 'nosuchgroup-gk' does not exist here",
        ),
        (
            Grant(0, groups=frozenset({"root"}), session="s"),
            Grant(1, users=frozenset({"root"}), program="pager"),
            "user 'root' is in group 'root'",
        ),
    ],
)
def test_conservative_overlap(attach: Grant, run: Grant, why: str) -> None:
    assert check.overlap_reason(attach, run) == why


def test_disjoint_accounts_may_run_a_known_good_program_uncontained() -> None:
    pol = policy(
        {"pager": LESS},
        [
            Grant(0, users=frozenset({"root"}), session="s"),
            Grant(1, users=frozenset({"nobody"}), program="pager"),
        ],
    )
    assert check.containment_errors(pol) == []


def test_a_spawning_program_is_an_error_by_its_real_path() -> None:
    vim = Program("editor", ("/usr/bin/vim", "-Z", "--", "/p"))
    pol = policy({"editor": vim}, [Grant(0, users=frozenset({"nobody"}), program="editor")])
    shown = "/usr/bin/vim" if VIM_REAL == "/usr/bin/vim" else f"/usr/bin/vim ({VIM_REAL})"
    assert check.containment_errors(pol) == [
        Problem(
            "programs.editor.argv",
            f"{shown} can run commands as the guest "
            "(vim: 'shell' + brace expansion and csprg spawn commands despite -Z); "
            "set programs.editor.sandbox = true",
        )
    ]


def test_a_symlink_is_judged_by_its_target(tmp_path: os.PathLike[str]) -> None:
    link = os.path.join(tmp_path, "innocent")
    os.symlink("/usr/bin/python3", link)
    real = os.path.realpath(link)
    assert programrules.spawning_reason(real, (link,)) == "a language interpreter"


@pytest.mark.parametrize(
    ("argv", "verdict"),
    [
        (("/usr/bin/less", "--", "/etc/motd"), None),
        (("/usr/bin/less", "-R", "--", "/etc/motd"), None),
        (("/usr/bin/less",), "less needs '--', a file after it (never stdin) and no '+command'"),
        (
            ("/usr/bin/less", "/etc/motd"),
            "less needs '--', a file after it (never stdin) and no '+command'",
        ),
        (
            ("/usr/bin/less", "--", "-"),
            "less needs '--', a file after it (never stdin) and no '+command'",
        ),
        (
            ("/usr/bin/less", "+!id", "--", "/f"),
            "less needs '--', a file after it (never stdin) and no '+command'",
        ),
        (("/usr/bin/nano", "--restricted", "--", "/f"), None),
        (("/usr/bin/nano", "-R", "--", "/f"), None),
        (("/usr/bin/rnano", "--", "/f"), None),
        (("/usr/bin/nano", "--", "/f"), "nano needs --restricted and '--' before the file"),
        (("/usr/bin/rnano", "/f"), "nano needs --restricted and '--' before the file"),
        (("/usr/bin/vim.nox",), "vim with :perl/:python/:lua/:ruby, unrestricted by -Z"),
        (("/usr/bin/vim.gtk3",), "vim with :perl/:python/:lua/:ruby, unrestricted by -Z"),
        (
            ("/usr/bin/vim.tiny",),
            "vim: 'shell' + brace expansion and csprg spawn commands despite -Z",
        ),
        (("/usr/bin/nvim",), "neovim embeds Lua and a terminal"),
        (("/usr/bin/emacs-nox",), "editor with a shell or an extension language"),
        (("/usr/bin/mc",), "Midnight Commander runs a subshell and user menus"),
        (("/usr/bin/python3.11",), "a language interpreter"),
        (("/usr/bin/busybox",), "a shell, or runs a command"),
        (("/usr/bin/more",), "pager or browser with shell or filter commands"),
        (("/usr/bin/man",), "pager or browser with shell or filter commands"),
        (("/usr/bin/htop",), ""),
    ],
)
def test_the_program_table(argv: tuple[str, ...], verdict: str | None) -> None:
    assert programrules.spawning_reason(argv[0], argv) == verdict


def conn(user: str = "pair", groups: frozenset[str] = frozenset()) -> Connection:
    return gkunit.connection(user=user, groups=groups)


def test_login_denies_an_uncontained_program_for_an_attaching_account() -> None:
    grant = Grant(1, users=frozenset({"pair"}), program="pager")
    pol = policy({"pager": LESS}, [Grant(0, groups=frozenset({"g"}), session="s"), grant])
    assert programrules.login_problem(pol, conn(groups=frozenset({"g"})), LESS, grant) == (
        "uncontained_program",
        "grant[1] runs program 'pager' uncontained, but grant[0] lets 'pair' attach to session 's'",
    )
    assert programrules.login_problem(pol, conn(groups=frozenset({"h"})), LESS, grant) is None


def test_login_denies_a_spawning_program_for_anyone() -> None:
    vim = Program("editor", ("/usr/bin/vim", "--", "/p"))
    grant = Grant(0, users=frozenset({"pair"}), program="editor")
    pol = policy({"editor": vim}, [grant])
    reason, detail = programrules.login_problem(pol, conn(), vim, grant) or ("", "")
    assert reason == "program_unsafe"
    assert detail.startswith(f"/usr/bin/vim is {VIM_REAL}: vim: ")
    contained = Program("editor", vim.argv, sandbox=True)
    assert programrules.login_problem(pol, conn(), contained, grant) is None


def test_the_gatekeeper_denies_the_01_seed_policy_with_78(policy_dir: gkunit.PolicyDir) -> None:
    policy_dir.write(
        f"""
[sessions.shared]
socket = "/run/nonexistent.sock"
owner = "{ME}"
target = "shared"
[programs.editor]
argv = ["/usr/bin/vim", "-Z", "-u", "DEFAULTS", "-i", "NONE", "--noplugin", "--", "/tmp"]
[[grant]]
users = ["{ME}"]
session = "shared"
[[grant]]
users = ["{ME}"]
program = "editor"
"""
    )
    before = len(policy_dir.records())
    result = connect.run(
        ["--policy", str(policy_dir.policy)], gkunit.environ(b"run editor"), stdin_is_tty=True
    )
    assert isinstance(result, connect._Outcome)
    assert result.code == EX_CONFIG
    (record,) = policy_dir.records()[before:]
    assert (record["decision"], record["reason"], record["contained"]) == (
        "deny",
        "uncontained_program",
        False,
    )


def test_doctor_fails_a_contained_program_on_a_kernel_without_landlock() -> None:
    from gatekeeper.deploy import doctor  # noqa: PLC0415 - structlog-free, but the admin side

    contained = policy({"e": Program("e", ("/usr/bin/vim",), sandbox=True)}, [])
    plain = policy({}, [])
    bad = doctor.containment_check(contained, abi=0, seccomp=True)
    assert (bad.status, bad.message) == (
        "fail",
        "Landlock ABI 0, seccomp yes: contained programs (e) are denied on this kernel",
    )
    assert "lsm=...,landlock" in (bad.fix or "")
    assert doctor.containment_check(plain, abi=0, seccomp=True).status == "warn"
    assert doctor.containment_check(contained, abi=7, seccomp=False).status == "fail"
    good = doctor.containment_check(contained, abi=7, seccomp=True)
    assert (good.status, good.message) == (
        "ok",
        "Landlock ABI 7, seccomp yes: contained programs can run",
    )
    live = doctor.containment_check(contained)
    assert live.status == "ok"  # this machine: kernel 6.18, Landlock ABI 7


def test_a_changed_target_denies_until_check_runs_again() -> None:
    from gatekeeper.login import programstage  # noqa: PLC0415
    from gatekeeper.login.decide import RunProgram  # noqa: PLC0415
    from gatekeeper.login.plan import ExecPlan  # noqa: PLC0415

    real = os.path.realpath("/bin/true")
    st = os.stat(real)
    grant = Grant(0, users=frozenset({"pair"}), program="t")
    pinned = (real, st.st_dev, st.st_ino, st.st_uid, st.st_mode)
    exe = ExecPlan("/bin/true", ("/bin/true",), {})
    from gatekeeper.login.decide import Identity  # noqa: PLC0415

    identity = Identity("pair", None, None)
    for pin, expected in (
        (pinned, None),
        ((real, st.st_dev, st.st_ino + 1, st.st_uid, st.st_mode), "program_changed"),
        (("/usr/bin/vim.nox", st.st_dev, st.st_ino, st.st_uid, st.st_mode), "program_changed"),
        ((real, st.st_dev, st.st_ino, st.st_uid, st.st_mode | 0o002), "program_changed"),
    ):
        program = Program("t", ("/bin/true",), pin=pin)
        pol = policy({"t": program}, [grant])
        decision = RunProgram(identity, grant, "t")
        out = programstage.prepare(decision, pol, conn(), exe)
        if expected is None:
            assert isinstance(out, ExecPlan)
            assert (out.path, out.argv) == (real, ("/bin/true",))  # resolved path, argv as written
        else:
            assert not isinstance(out, ExecPlan)
            assert (out.reason, out.exit_code) == (expected, EX_CONFIG)
            assert out.detail.endswith("run gatekeeperctl check")
