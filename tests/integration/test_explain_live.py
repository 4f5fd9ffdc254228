"""``gatekeeperctl explain --live`` against a real host tmux server (issue 12).

``--live`` runs the login path's own pre-flight; what it prints must be what
the record of a real login says. Each case logs in for real (the launcher, as
the guest, on a pty) and compares that record with explain's answer; the
control is explain without ``--live``, which cannot see the live system.
"""

from __future__ import annotations

import json

import pytest
from gkhost import guest_env

from gatekeeper.cli import main as cli

pytestmark = [pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

COMPARED = ("decision", "reason", "exit_code", "grant", "session", "mode", "argv")


def _policy(socket: str, owner: str, user: str) -> str:
    return f"""
[sessions.shared]
socket = "{socket}"
owner = "{owner}"
target = "shared"

[[grant]]
users = ["{user}"]
session = "shared"
"""


def _explain(capsys, policy, user: str, *, live: bool) -> dict:
    argv = ["explain", "--policy", str(policy), "--user", user, "--command", "attach shared"]
    assert cli.main([*argv, "--json", *(["--live"] if live else [])]) == 0
    return json.loads(capsys.readouterr().out)


def _login_record(observer, journal, gatekeeper_bin, account, policy) -> tuple[int, dict]:
    pane = observer.spawn(
        account, [str(gatekeeper_bin), "--policy", str(policy)], guest_env("attach shared")
    )
    status = observer.exit_status(pane)
    return status, journal.messages(f"GATEKEEPER_USER={account.name}")[-1]


def test_live_explain_agrees_with_the_login_when_the_server_is_gone(
    accounts, host_session, observer, write_policy, journal, gatekeeper_bin, capsys
) -> None:
    policy = write_policy(_policy(host_session.socket, accounts.host.name, accounts.guest.name))
    host_session.tmux.kill()  # the host's server exits; tmux removes its socket

    status, record = _login_record(observer, journal, gatekeeper_bin, accounts.guest, policy)
    assert (record["decision"], record["reason"], status) == ("deny", "socket_missing", 69)

    live = _explain(capsys, policy, accounts.guest.name, live=True)
    assert {k: live.get(k) for k in COMPARED} == {k: record[k] for k in COMPARED}
    assert live["live"] == "refused"
    # Control: without --live the decision alone allows it.
    offline = _explain(capsys, policy, accounts.guest.name, live=False)
    assert (offline["decision"], offline["reason"]) == ("allow", "granted")


def test_live_explain_checks_the_socket_for_the_guests_groups(
    accounts, host_session, observer, write_policy, journal, gatekeeper_bin, capsys
) -> None:
    """The outsider is granted but not in the share group: the 0660 socket is not theirs."""
    policy = write_policy(_policy(host_session.socket, accounts.host.name, accounts.outsider.name))

    status, record = _login_record(observer, journal, gatekeeper_bin, accounts.outsider, policy)
    assert record["decision"] == "deny"
    assert status == record["exit_code"]

    live = _explain(capsys, policy, accounts.outsider.name, live=True)
    assert {k: live.get(k) for k in COMPARED} == {k: record[k] for k in COMPARED}
    offline = _explain(capsys, policy, accounts.outsider.name, live=False)
    assert offline["decision"] == "allow"


def test_live_explain_passes_a_running_shared_session(
    accounts, host_session, observer, write_policy, journal, gatekeeper_bin, capsys
) -> None:
    host_session.tmux.cmd("server-access", "-ar", accounts.guest.name)
    policy = write_policy(_policy(host_session.socket, accounts.host.name, accounts.guest.name))

    pane = observer.spawn(
        accounts.guest, [str(gatekeeper_bin), "--policy", str(policy)], guest_env("attach shared")
    )
    observer.tmux.wait_screen(pane, host_session.marker)
    record = journal.messages(f"GATEKEEPER_USER={accounts.guest.name}")[-1]
    assert (record["decision"], record["reason"]) == ("allow", "granted")

    live = _explain(capsys, policy, accounts.guest.name, live=True)
    shown = {k: record[k] for k in COMPARED if record[k] is not None}  # explain omits nulls
    assert {k: live.get(k) for k in shown} == shown
    assert "exit_code" not in live
    assert live["live"] == "passed"
