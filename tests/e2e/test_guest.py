"""What a guest sees through a real sshd running the generated config (SPEC §2, §5, §7).

Interactive requests run a real ``ssh -tt`` inside a private tmux server, so
capture-pane shows the guest's screen; what reaches the host is read with
capture-pane on the host's own tmux server. Non-interactive requests run
``ssh`` directly: its exit status is the gatekeeper's (ssh returns the remote
exit code) and its stderr is what the guest reads.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import gksshd
import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.tmux, pytest.mark.accounts, pytest.mark.journald]

DENIED = "gatekeeper: access denied (ref {ref}). Run 'list' to see what you may use.\n"
BAD_REQUEST = "gatekeeper: request not understood (ref {ref}). Run 'help' for usage.\n"
NEED_TTY = "gatekeeper: this needs a terminal: connect with 'ssh -t' (ref {ref}).\n"
NOT_RUNNING = "gatekeeper: session '{name}' is not running or not shared with you (ref {ref}).\n"
REF = re.compile(r"\(ref ([0-9a-f]{16})\)")


def record_for(journal, connection_id: str) -> dict[str, Any]:
    raw = journal.wait_for(f"GATEKEEPER_CONNECTION_ID={connection_id}", timeout=30)
    assert len(raw) == 1, "exactly one record per connection"
    record: dict[str, Any] = json.loads(raw[0]["MESSAGE"])
    return record


def latest(journal, user: str, before: int) -> dict[str, Any]:
    """The newest record of ``user`` once there are more than ``before``."""
    raw = journal.wait_for(f"GATEKEEPER_USER={user}", count=before + 1, timeout=30)
    record: dict[str, Any] = json.loads(raw[-1]["MESSAGE"])
    return record


def count(journal, user: str) -> int:
    return len(journal.records(f"GATEKEEPER_USER={user}"))


def clients(host) -> list[str]:
    out = host.tmux.out("list-clients", "-F", "#{client_user} #{client_readonly}")
    return sorted(out.splitlines())


def no_clients_left(host) -> None:
    gktest.wait_until(lambda: not clients(host), 30, "guests to leave the host's session")


def test_read_only_guest_sees_the_host_and_cannot_type(deployment, term, journal) -> None:
    host, guest = deployment.host, deployment.accounts.guest
    before = count(journal, guest.name)
    pane = term.run(deployment.argv("guest", "-tt", command=("attach", "shared")))
    term.tmux.wait_screen(pane, host.marker, timeout=30)
    assert clients(host) == [f"{guest.name} 1"]
    record = latest(journal, guest.name, before)
    assert (record["decision"], record["mode"], record["session"]) == (
        "allow",
        "read-only",
        "shared",
    )

    typed = f"echo RO-TYPED-{secrets.token_hex(3)}"
    term.tmux.cmd("send-keys", "-t", pane, typed, "Enter")
    probe = f"HOST-AFTER-{secrets.token_hex(3)}"
    host.tmux.cmd("send-keys", "-t", "=shared:", f"echo {probe}", "Enter")
    # The guest's keys were processed before the host's probe reached its screen.
    term.tmux.wait_screen(pane, probe, timeout=30)
    assert typed not in host.tmux.capture("=shared:")
    term.close(pane)
    no_clients_left(host)


def test_read_write_guest_types_into_the_host_pane(deployment, term, journal) -> None:
    host, pairer = deployment.host, deployment.accounts.pairer
    before = count(journal, pairer.name)
    pane = term.run(deployment.argv("pairer", "-tt", command=("attach", "shared")))
    term.tmux.wait_screen(pane, host.marker, timeout=30)
    assert clients(host) == [f"{pairer.name} 0"]
    word = f"PAIR-TYPED-{secrets.token_hex(3)}"
    term.tmux.cmd("send-keys", "-t", pane, f"echo {word}", "Enter")
    host.tmux.wait_screen("=shared:", word + "\n", timeout=30)
    assert latest(journal, pairer.name, before)["mode"] == "read-write"
    term.close(pane)
    no_clients_left(host)


def test_default_grant_and_watch(deployment, term, journal) -> None:
    host = deployment.host
    before = count(journal, deployment.accounts.guest.name)
    # `ssh -t guest@host` with no command: the guest's default grant (read-only).
    pane = term.run(deployment.argv("guest", "-tt"))
    term.tmux.wait_screen(pane, host.marker, timeout=30)
    assert clients(host) == [f"{deployment.accounts.guest.name} 1"]
    assert latest(journal, deployment.accounts.guest.name, before)["request"] == "default"
    term.close(pane)
    no_clients_left(host)
    # `watch` is read-only even for the read-write pairer.
    pane = term.run(deployment.argv("pairer", "-tt", command=("watch", "shared")))
    term.tmux.wait_screen(pane, host.marker, timeout=30)
    assert clients(host) == [f"{deployment.accounts.pairer.name} 1"]
    term.close(pane)
    no_clients_left(host)


def test_run_editor_shows_the_file_in_restricted_vim(deployment, term, journal) -> None:
    before = count(journal, deployment.accounts.guest.name)
    pane = term.run(deployment.argv("guest", "-tt", command=("run", "editor")))
    term.tmux.wait_screen(pane, deployment.project_file.read_text().strip(), timeout=30)
    # -Z: no shell escape from the allowed program (corpus VIM-04).
    term.tmux.cmd("send-keys", "-t", pane, "Escape", ":!id", "Enter")
    term.tmux.wait_screen(pane, "E145", timeout=30)
    term.tmux.cmd("send-keys", "-t", pane, "Escape", ":qa!", "Enter")
    assert term.exit_status(pane) == 0
    record = latest(journal, deployment.accounts.guest.name, before)
    assert record["program"] == "editor"
    assert record["argv"][0] == "/usr/bin/vim.basic"


def test_list_whoami_and_help(deployment, journal) -> None:
    guest = deployment.accounts.guest
    listed = deployment.ssh("guest", command=("list",))
    assert listed.returncode == 0, listed.stderr
    text = listed.stdout.decode()
    assert re.search(r"shared\s+read-only\s+running", text), text
    assert re.search(r"offline\s+read-only\s+not running", text), text
    assert "editor" in text
    assert listed.stderr == b""

    as_json = json.loads(deployment.ssh("guest", command=("list", "--json")).stdout)
    sessions = {s["name"]: s for s in as_json["sessions"]}
    assert sessions["shared"]["running"] is True
    assert sessions["shared"]["default"] is True
    assert sessions["offline"]["running"] is False
    assert {p["name"] for p in as_json["programs"]} == {"editor", "printenv"}

    who = deployment.ssh("guest", command=("whoami",))
    assert who.returncode == 0
    assert f"user: {guest.name}" in who.stdout.decode()
    assert f"key_fingerprint: {deployment.keys['guest'].fingerprint}" in who.stdout.decode()

    before = count(journal, guest.name)
    helped = deployment.ssh("guest", command=("help",))
    assert helped.returncode == 0
    assert "attach SESSION" in helped.stdout.decode()
    assert latest(journal, guest.name, before)["reason"] == "inform_help"


@pytest.mark.parametrize(
    ("who", "tty", "command", "code", "template"),
    [
        ("guest", False, ("bash",), 1, DENIED),
        ("guest", False, ("cat", "/etc/passwd"), 1, DENIED),
        ("member", True, ("attach", "offline"), 1, DENIED),
        ("guest", False, ("attach shared; id",), 64, BAD_REQUEST),
        ("guest", False, ("attach 'shared",), 64, BAD_REQUEST),
        ("guest", False, ("attach \x1b]0;pwned\x07\x1b[2J",), 64, BAD_REQUEST),
        ("guest", False, ("attach", "a*"), 64, BAD_REQUEST),
        ("guest", False, ("ATTACH", "shared"), 1, DENIED),
        ("guest", False, ("attach", "shared"), 64, NEED_TTY),
        ("guest", False, ("run", "editor"), 64, NEED_TTY),
        ("guest", True, ("attach", "offline"), 69, NOT_RUNNING),
    ],
    ids=[
        "shell",
        "cat",
        "no-grant",
        "metachar",
        "quote",
        "escape-seq",
        "glob",
        "case",
        "attach-no-tty",
        "run-no-tty",
        "not-running",
    ],
)
def test_each_deny_path_shows_one_escaped_line_and_the_spec_code(
    deployment, journal, who, tty, command, code, template
) -> None:
    options = ("-tt",) if tty else ("-T",)
    result = deployment.ssh(who, *options, command=command)
    # With a pty the remote stderr arrives on the terminal, i.e. ssh's stdout.
    seen = result.stdout + result.stderr if tty else result.stderr
    stderr = seen.decode("utf-8", errors="replace").replace("\r\n", "\n")
    assert result.returncode == code, stderr
    match = REF.search(stderr)
    assert match, stderr
    ref = match.group(1)
    assert stderr == template.format(ref=ref, name="offline"), stderr
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", stderr), "no raw control characters"
    assert b"pwned" not in result.stdout + result.stderr
    record = record_for(journal, ref)
    assert record["decision"] == "deny"
    assert record["exit_code"] == code
    assert "\x1b" not in json.dumps(record, ensure_ascii=False)


def test_two_keys_on_one_account_are_two_people(deployment, journal) -> None:
    member = deployment.accounts.member
    for role, person in (("member", "alice"), ("bob", "bob")):
        before = count(journal, member.name)
        who = deployment.sshd.ssh(deployment.keys[role], member.name, command=("whoami", "--json"))
        assert who.returncode == 0, who.stderr
        data = json.loads(who.stdout)
        assert data["person"] == person
        assert data["key_fingerprint"] == deployment.keys[role].fingerprint
        record = latest(journal, member.name, before)
        assert record["person"] == person
        assert record["key_fingerprint"] == deployment.keys[role].fingerprint
        # The port the record names is the port sshd itself logged for this key.
        log = deployment.sshd.log_text()
        accepted = re.findall(
            rf"Accepted publickey for {re.escape(member.name)} from (\S+) port (\d+) ssh2: "
            rf"\S+ {re.escape(deployment.keys[role].fingerprint)}",
            log,
        )
        assert accepted, log
        assert (record["client_addr"], str(record["client_port"])) == accepted[-1]
        assert (data["client_addr"], data["client_port"]) == (
            record["client_addr"],
            record["client_port"],
        )
        assert record["server_port"] == deployment.sshd.port


UNAVAILABLE = "gatekeeper: service unavailable, contact the administrator (ref {ref}).\n"


def test_a_broken_policy_or_audit_sink_fails_closed(deployment, journal) -> None:
    """Exit 78 (policy invalid or unsafe) and 75 (no audit record), as the guest sees them."""
    site, outsider = deployment.site, deployment.accounts.outsider
    key = site.key("outsider-broken")
    site.authorize(outsider.name, key)
    header = 'version = 1\n[audit]\njournal_socket = "{socket}"\n'
    body = (
        f'[programs.p]\nargv = ["/bin/true"]\n[[grant]]\nusers = ["{outsider.name}"]\n'
        'program = "p"\n'
    )
    policy = gktest.write_root_file(
        site.root / "broken.toml", header.format(socket=journal.socket) + body
    )
    sshd = site.start("broken", gksshd.sshd_config(policy))

    def attempt(code: int) -> str:
        result = sshd.ssh(key, outsider.name, command=("help",))
        stderr = result.stderr.decode()
        assert result.returncode == code, stderr
        ref = REF.search(stderr)
        assert ref, stderr
        assert stderr == UNAVAILABLE.format(ref=ref.group(1))
        assert result.stdout == b""
        return ref.group(1)

    # The audit sink is gone: no record, no access (SPEC §7: 75).
    gktest.write_root_file(
        policy, header.format(socket=str(site.root / "no-journal" / "socket")) + body
    )
    attempt(75)
    # Invalid policy: 78, and the record still reaches the [audit] sink it names.
    gktest.write_root_file(policy, header.format(socket=journal.socket) + body + "grnat = 1\n")
    record = record_for(journal, attempt(78))
    assert (record["decision"], record["reason"], record["exit_code"]) == (
        "error",
        "policy_invalid",
        78,
    )
    # A policy others can write is not believed at all: 78.
    gktest.write_root_file(policy, header.format(socket=journal.socket) + body, mode=0o666)
    attempt(78)


def test_list_says_not_running_once_the_host_revoked_access(deployment) -> None:
    """After `kick` (server-access -d) `list` must agree with `attach` (exit 69)."""
    host, guest = deployment.host, deployment.accounts.guest

    def shared_running() -> bool:
        listed = deployment.ssh("guest", command=("list", "--json"))
        assert listed.returncode == 0, listed.stderr
        running: bool = {s["name"]: s for s in json.loads(listed.stdout)["sessions"]}["shared"][
            "running"
        ]
        return running

    assert shared_running() is True
    host.tmux.cmd("server-access", "-d", guest.name)
    try:
        assert shared_running() is False
        attach = deployment.ssh("guest", "-tt", command=("attach", "shared"))
        assert attach.returncode == 69
    finally:
        host.tmux.cmd("server-access", "-ar", guest.name)
    # CONTROL: access restored, list says running again.
    assert shared_running() is True
