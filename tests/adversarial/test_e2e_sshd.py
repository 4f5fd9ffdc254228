"""End to end: the corpus's sshd-level attacks against real sshds on 127.0.0.1.

One set of sshds for the whole module (sshd, tmux and journald per test would
blow the time budget), all from the same accounts:

* ``hardened``: the drop-in is the real ``gatekeeperctl sshd-config`` output
  for the main policy (audit to the session's journald namespace);
* ``probe``: the same hardening, ``UsePAM yes`` like Debian, for a policy whose
  audit sink is a FIFO (see ``gkadv_sshd``): the test reads the environment the
  gatekeeper really received;
* ``weak``: the same generated block, but *after* an earlier ``Match Group``
  that re-enables forwarding, accepts ``LANG LC_*`` and points the guest at a
  guest-owned ``authorized_keys`` (SECURITY.md §1.6, corpus ID-04) - the
  deployment ``doctor`` must flag, and where the attacks visibly work;
* ``internal``: hardened, with ``Subsystem sftp internal-sftp -l INFO``.

Accounts: the session's throwaway host/guest/pairer/outsider, plus a ``weak``
account (bash, guest-owned home) and a ``nologin`` account, made here.
Negative checks ("the gatekeeper never ran") are made exact with a sentinel:
after the attack, one more (denied) connection is made and its record awaited;
journald keeps one socket's datagrams in order, so anything the attack logged
is visible by then.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gkadv_sshd as gs
import gksshd
import gktest
import gkunit
import pytest
from gkhost import HostSession, start_host_session

pytestmark = [pytest.mark.sshd, pytest.mark.accounts, pytest.mark.journald, pytest.mark.tmux]

BASHRC_ATTACK = 'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'


def policy_text(audit: str, accounts: Any, host_socket: str, extra_users: list[str]) -> str:
    everyone = [accounts.guest.name, *extra_users]
    users = ", ".join(f'"{u}"' for u in everyone)
    return f"""\
version = 1

{audit}

[sessions.shared]
socket = "{host_socket}"
owner = "{accounts.host.name}"
target = "shared"

[programs.printenv]
argv = ["/usr/bin/env"]
sandbox = true

[programs.sftp]
argv = ["/usr/lib/openssh/sftp-server", "-d", "/tmp"]
sandbox = true
write = ["/tmp"]

[[grant]]
users = ["{accounts.guest.name}"]
session = "shared"
mode = "read-only"
default = true

[[grant]]
users = [{users}]
program = "printenv"

[[grant]]
users = ["{accounts.guest.name}"]
program = "sftp"

[[grant]]
users = ["{accounts.pairer.name}"]
session = "shared"
mode = "read-write"
"""


@dataclass
class World:
    site: gksshd.Site
    accounts: Any
    journal: gktest.Journal
    host: HostSession
    weak: gktest.Account
    nologin: gktest.Account
    keys: dict[str, gksshd.Key]
    policy: Path
    probe_policy: Path
    fifo: Path
    hardened: gksshd.Sshd
    probe: gksshd.Sshd
    weak_sshd: gksshd.Sshd
    internal: gksshd.Sshd
    scratch: Path
    doctored: dict[tuple[Path, Path], Any] = field(default_factory=dict)

    def doctor(self, policy: Path, sshd: gksshd.Sshd) -> Any:
        """``gatekeeperctl doctor`` for a deployment, once per module: nothing a test plants
        changes a finding (the weak account's home is its own either way)."""
        key = (policy, sshd.config)
        if key not in self.doctored:
            self.doctored[key] = gs.doctor(policy, sshd.config)
        return self.doctored[key]

    def ssh(self, who: str, *args: str, sshd: gksshd.Sshd | None = None, **kw: Any) -> Any:
        account = self.account(who)
        return (sshd or self.hardened).ssh(self.keys[who], account.name, *args, **kw)

    def account(self, who: str) -> gktest.Account:
        if who == "weak":
            return self.weak
        if who == "nologin":
            return self.nologin
        account: gktest.Account = getattr(self.accounts, who)
        return account

    def probe_env(self, who: str, *options: str, sshd: gksshd.Sshd | None = None, **kw: Any):
        return gs.probe(
            sshd or self.probe,
            self.keys[who],
            self.account(who),
            self.probe_policy,
            self.fifo,
            *options,
            **kw,
        )

    def records(self, who: str = "guest") -> list[dict[str, Any]]:
        return self.journal.messages(f"GATEKEEPER_USER={self.account(who).name}")

    def new_records(self, before: int, who: str = "guest") -> list[dict[str, Any]]:
        """The records written since there were ``before`` (awaited behind a sentinel)."""
        self.sentinel(who)
        return self.records(who)[before:-1]

    def sentinel(self, who: str = "guest") -> None:
        """One denied connection, awaited: every earlier record is visible afterwards."""
        word = gs.unique("sentinel")
        result = self.ssh(who, command=[word])
        assert result.returncode == 1, result.stderr
        ref = result.stderr.decode().split("(ref ", 1)[1].split(")", 1)[0]
        self.journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")


@pytest.fixture(scope="module")
def world(accounts, journal) -> Iterator[World]:
    gktest.require(gktest.GATEKEEPER.exists(), f"{gktest.GATEKEEPER} (run scripts/bootstrap)")
    gktest.require_tool("tmux", "sftp", "scp", "ssh-agent")
    tag = secrets.token_hex(2)
    # S604: `shell` is the account's login shell for useradd, not subprocess's shell=True.
    weak = gktest.create_account(f"gk-adv-weak-{tag}", [accounts.group], shell="/bin/bash")  # noqa: S604 - a login shell for the account, no shell run here
    nologin = gktest.create_account(f"gk-adv-nolog-{tag}", shell="/usr/sbin/nologin")  # noqa: S604 - a login shell for the account, no shell run here
    os.chown(weak.home, weak.uid, weak.gid)  # the weakness: the guest owns its home
    try:
        with gksshd.site() as site:
            gid = grp.getgrnam(accounts.group).gr_gid
            host = start_host_session(accounts.host, site.root / "host", gid)
            try:
                host.tmux.cmd("server-access", "-ar", accounts.guest.name)
                host.tmux.cmd("server-access", "-aw", accounts.pairer.name)
                keys = {r: site.key(r) for r in ("guest", "pairer", "outsider", "weak", "nologin")}
                for role in ("guest", "pairer", "outsider"):
                    site.authorize(getattr(accounts, role).name, keys[role])
                site.authorize(weak.name, keys["weak"])
                site.authorize(nologin.name, keys["nologin"])
                extra = [weak.name, nologin.name]
                policy = gktest.write_root_file(
                    site.root / "policy.toml",
                    policy_text(
                        f'[audit]\njournal_socket = "{journal.socket}"',
                        accounts,
                        host.socket,
                        extra,
                    ),
                )
                fifo = site.root / "probe" / "audit.fifo"
                fifo.parent.mkdir(mode=0o755)
                os.mkfifo(fifo)
                fifo.chmod(0o622)
                probe_policy = gktest.write_root_file(
                    site.root / "probe.toml",
                    policy_text(
                        f'[audit]\nsink = "file"\nfile = "{fifo}"\non_failure = "allow"',
                        accounts,
                        host.socket,
                        extra,
                    ),
                )
                # The weak deployment's guest-owned authorized_keys (corpus ENV-16).
                weak_keys = site.root / "weak-keys"
                weak_keys.mkdir(mode=0o755)
                owned = gktest.write_root_file(
                    weak_keys / accounts.guest.name, keys["guest"].public + "\n"
                )
                os.chown(owned, accounts.guest.uid, accounts.guest.gid)
                early = (
                    "UsePAM yes\n"
                    f"Match Group {accounts.group}\n"
                    "    DisableForwarding no\n"
                    "    AllowTcpForwarding yes\n"
                    "    AllowStreamLocalForwarding yes\n"
                    "    AllowAgentForwarding yes\n"
                    "    X11Forwarding yes\n"
                    "    PermitOpen any\n"
                    "    PermitListen any\n"
                    "    AcceptEnv LANG LC_*\n"
                    f"    AuthorizedKeysFile {weak_keys}/%u\n"
                )
                generated = gksshd.sshd_config(policy)
                generated_probe = gksshd.sshd_config(probe_policy)
                hardened = site.start("hardened", generated)
                probe_sshd = site.start("probe", "UsePAM yes\n" + generated_probe)
                weak_sshd = site.start("weak", early + generated_probe)
                internal = site.start(
                    "internal",
                    generated,
                    gksshd.DEBIAN_GLOBALS.replace(
                        "/usr/lib/openssh/sftp-server", "internal-sftp -l INFO"
                    ),
                )
                scratch = site.root / "scratch"
                scratch.mkdir(mode=0o1777)
                yield World(
                    site, accounts, journal, host, weak, nologin, keys, policy, probe_policy,
                    fifo, hardened, probe_sshd, weak_sshd, internal, scratch,
                )  # fmt: skip
            finally:
                host.tmux.kill()
    finally:
        gktest.delete_account(weak.name)
        gktest.delete_account(nologin.name)


def vector(corpus: dict[str, Any], corpus_id: str) -> list[str]:
    return list(corpus[corpus_id]["vector"].get("ssh_args", []))


class Service:
    """A loopback TCP service that greets and counts who reached it (the forwarding target)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(b"SVC-HELLO\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def service() -> Iterator[Service]:
    made = Service()
    try:
        yield made
    finally:
        made.close()


@contextlib.contextmanager
def background(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=gksshd.client_env(),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    return gksshd.free_port()


def _read_via_tcp(port: int) -> bytes:
    """Connect to a local forwarding listener and read what comes back (b'' = refused)."""

    def connected() -> socket.socket | None:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            return None

    conn = gktest.wait_until(connected, 15, f"the ssh client to listen on {port}")
    with conn:
        data = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(100):
                data += chunk
        return data


# --------------------------------------------------------------------------- forwarding


@pytest.mark.corpus("FWD-01")
@pytest.mark.parametrize("deployment", ["hardened", "weak"])
def test_local_tcp_forwarding_never_reaches_the_service(world, service, deployment) -> None:
    """``-N -L``: the hardened sshd refuses direct-tcpip; the weak one visibly forwards."""
    sshd = world.hardened if deployment == "hardened" else world.weak_sshd
    lport = _free_port()
    argv = sshd.ssh_argv(
        world.keys["guest"], world.accounts.guest.name,
        "-N", "-L", f"127.0.0.1:{lport}:127.0.0.1:{service.port}",
    )  # fmt: skip
    with background(argv):
        got = _read_via_tcp(lport)
    if deployment == "hardened":
        assert got == b""
        assert service.accepted == 0
        assert "refused local port forward" in sshd.log_text()
    else:
        assert got == b"SVC-HELLO\n", "the weak deployment must show the bypass"


@pytest.mark.corpus("FWD-02")
def test_remote_forwarding_is_refused(world, corpus, service) -> None:
    args = vector(corpus, "FWD-02")
    args[-1] = f"127.0.0.1:{_free_port()}:127.0.0.1:{service.port}"
    result = world.ssh("guest", *args, "-o", "ExitOnForwardFailure=yes")
    assert result.returncode == 255
    assert b"remote port forwarding failed" in result.stderr


@pytest.mark.corpus("FWD-04", "ID-04")
def test_stdio_forwarding_is_refused_and_an_earlier_match_is_flagged(world, service) -> None:
    """-W is direct-tcpip (FWD-04). ID-04: an earlier ``Match Group`` re-enabling forwarding wins
    over the generated block (first value obtained); ``doctor`` reads ``sshd -T -C`` and flags
    it, and the attack works there - while the hardened sshd refuses it."""
    refused = world.ssh("guest", "-W", f"127.0.0.1:{service.port}")
    assert refused.returncode == 255
    assert b"stdio forwarding failed" in refused.stderr
    assert service.accepted == 0

    weak = world.ssh("guest", "-W", f"127.0.0.1:{service.port}", sshd=world.weak_sshd)
    assert weak.stdout == b"SVC-HELLO\n"
    guest = world.accounts.guest.name
    flagged = world.doctor(world.probe_policy, world.weak_sshd)
    for keyword in ("disableforwarding", "allowtcpforwarding", "allowagentforwarding"):
        assert gs.status(flagged, f"sshd.{keyword}", guest) == "fail", keyword
    fine = world.doctor(world.policy, world.hardened)
    for keyword in ("disableforwarding", "allowtcpforwarding", "allowagentforwarding"):
        assert gs.status(fine, f"sshd.{keyword}", guest) == "ok", keyword


@pytest.mark.corpus("FWD-05", "TMUX-14")
@pytest.mark.parametrize("deployment", ["hardened", "weak"])
def test_the_tmux_socket_cannot_be_forwarded(world, deployment) -> None:
    """A forwarded tmux socket is a second client: read-only could be switched off (TMUX-14).

    tmux < 3.7 lets any client clear its own read-only flag, so the only defence on
    Debian's tmux is that no second client exists: streamlocal forwarding is refused.
    The weak deployment shows what the guest would otherwise get: the host's server.
    """
    sshd = world.hardened if deployment == "hardened" else world.weak_sshd
    local = world.site.root / f"fwd-{secrets.token_hex(3)}.sock"
    argv = sshd.ssh_argv(
        world.keys["guest"], world.accounts.guest.name,
        "-N", "-L", f"{local}:{world.host.socket}",
    )  # fmt: skip
    with background(argv):
        gktest.wait_until(local.exists, 15, "the client's local socket")
        # list-clients is one of the four commands a read-only client may run (tmux 3.3a).
        via = gktest.Tmux(str(local)).cmd("list-clients", check=False)
    local.unlink(missing_ok=True)
    if deployment == "hardened":
        assert via.returncode != 0
        assert "refused streamlocal port forward" in sshd.log_text()
    else:
        # The host's own server answered the guest: a second client, outside the gatekeeper.
        assert via.returncode == 0, "the weak deployment must show the bypass"


@pytest.mark.corpus("FWD-07", "FWD-08", "ENV-01", "ENV-02", "ENV-17")
@pytest.mark.parametrize("deployment", ["hardened", "weak"])
def test_what_the_client_sends_never_reaches_the_gatekeeper(
    world, corpus, deployment, adv_dir
) -> None:
    """The gatekeeper's own environment, read from /proc while it holds still.

    Hardened: no SSH_AUTH_SOCK (agent refused), no DISPLAY (X11 refused), none of
    ENV-01/ENV-17's LANG/LC_* values, none of ENV-02's names. Weak (earlier Match
    with forwarding and ``AcceptEnv LANG LC_*``): the agent and LC_* arrive, and
    doctor flags every one of those settings. ENV-02's names are dropped by sshd in
    both (not in any AcceptEnv). The gatekeeper never reads LANG/LC_*: its children
    get ``LANG=C.UTF-8`` and nothing else (``plan.environment``). X11 is not asked for
    on the weak sshd: the server's xauth would spend 20 s failing to lock the
    root-owned home's .Xauthority - doctor's x11forwarding check covers that half.
    """
    agent_dir = adv_dir / "agent"
    agent_dir.mkdir(mode=0o700)
    agent_sock = agent_dir / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(agent_sock)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=gksshd.client_env(),
    )
    try:
        gktest.wait_until(agent_sock.exists, 10, "ssh-agent socket")
        sshd = world.probe if deployment == "hardened" else world.weak_sshd
        options = [*vector(corpus, "FWD-07")]
        if deployment == "hardened":
            options += [*vector(corpus, "FWD-08"), "-o", "ForwardX11Trusted=yes"]
        # ssh takes only the first SetEnv option: the three vectors become one, ENV-17's
        # LC_ALL first (the first value of a name wins).
        words = [
            vector(corpus, i)[1].removeprefix("SetEnv ") for i in ("ENV-17", "ENV-01", "ENV-02")
        ]
        options += ["-o", "SetEnv " + " ".join(words)]
        seen = world.probe_env(
            "guest",
            *options,
            sshd=sshd,
            command=["list"],
            env={"DISPLAY": ":99"},
            agent=agent_sock,
        )
    finally:
        agent.terminate()
        agent.wait(10)
    env = seen.env
    assert env is not None, seen.result.stderr
    assert "SSH_CONNECTION" in env  # the probe reads the right process
    assert seen.record is not None
    assert seen.record["decision"] == "allow"
    for name in ("BASH_ENV", "PYTHONPATH", "LD_PRELOAD"):
        assert name not in env, name
    if deployment == "hardened":
        for name in ("SSH_AUTH_SOCK", "DISPLAY", "LC_PWN", "LC_ALL"):
            assert name not in env, name
        assert env.get("LANG") != "xx"
        return
    assert "SSH_AUTH_SOCK" in env, "the weak deployment must show the agent arriving"
    assert env["LC_PWN"] == "$(id>/tmp/pwned)"
    assert env["LC_ALL"] == "../../../../tmp/evil"
    guest = world.accounts.guest.name
    flagged = world.doctor(world.probe_policy, world.weak_sshd)
    for check in ("sshd.allowagentforwarding", "sshd.x11forwarding", "sshd.acceptenv"):
        assert gs.status(flagged, check, guest) == "fail", check


@pytest.mark.corpus("FWD-10")
def test_forwarding_asked_for_on_a_live_connection_is_refused(world, service) -> None:
    """FWD-10: ``~C`` sends the same global request as ``ssh -O forward`` on a live master.

    OpenSSH >= 9.2 disables ``~C`` by default (EnableEscapeCommandline), so the runtime
    request is made through the connection-multiplexing master instead: the server
    applies the same check to a forwarding requested at any time.
    """
    control = world.site.root / f"mux-{secrets.token_hex(3)}"
    base = ["-o", f"ControlPath={control}"]
    master = world.hardened.ssh_argv(
        world.keys["guest"], world.accounts.guest.name, "-M", "-N", *base
    )
    with background(master):
        gktest.wait_until(control.exists, 15, "the mux master")
        args = ["-O", "forward", "-R", f"127.0.0.1:{_free_port()}:127.0.0.1:{service.port}"]
        result = world.ssh("guest", *base, *args)
        world.ssh("guest", *base, "-O", "exit")
    assert result.returncode == 255
    assert b"remote port forwarding failed" in result.stderr


@pytest.mark.corpus("FWD-11")
def test_no_session_channel_means_no_gatekeeper_and_only_sshd_logs(world) -> None:
    """``ssh -N``: the ForceCommand never runs; sshd logs the login, we log nothing."""
    before = len(world.records())
    log_before = world.hardened.log_text().count(
        "Accepted publickey for " + world.accounts.guest.name
    )
    argv = world.hardened.ssh_argv(world.keys["guest"], world.accounts.guest.name, "-N")
    with background(argv):
        gktest.wait_until(
            lambda: (
                world.hardened.log_text().count(
                    "Accepted publickey for " + world.accounts.guest.name
                )
                > log_before
            ),
            15,
            "sshd to accept the -N login",
        )
    world.sentinel()
    assert len(world.records()) == before + 1  # the sentinel only


# --------------------------------------------------------------------------- subsystems


def _sftp_options(world: World, who: str) -> list[str]:
    options = world.site.client_options(world.keys[who], world.hardened.port)
    return ["-P" if o == "-p" else o for o in options]


def _ref(stderr: bytes) -> str:
    text = stderr.decode(errors="replace")
    assert "(ref " in text, text
    return text.split("(ref ", 1)[1].split(")", 1)[0]


@pytest.mark.corpus("SUB-01", "SUB-08", "SFTP-01")
def test_sftp_is_denied_on_stderr_and_stdout_stays_clean(world) -> None:
    """SUB-01/SUB-08: one line on stderr, nothing on the sftp stream (no 'message too long').

    SFTP-01 (``sftp-server -d`` is not a jail): our request language cannot reach a
    subsystem at all - even with a program named ``sftp`` whose argv is sftp-server
    granted to this guest (this policy does), the subsystem request is not ``run sftp``
    and is denied. The spec is stricter than the corpus's "config-check" here.
    """
    before = len(world.records())
    argv = [
        "sftp",
        *_sftp_options(world, "guest"),
        "-b",
        "-",
        f"{world.accounts.guest.name}@127.0.0.1",
    ]
    result = subprocess.run(
        argv, input=b"ls /\n", capture_output=True, timeout=30, check=False,
        env=gksshd.client_env(),
    )  # fmt: skip
    assert result.returncode != 0
    assert b"message too long" not in result.stderr.lower()
    (record,) = world.new_records(before)
    assert record["original_command"] == "/usr/lib/openssh/sftp-server"
    assert record["decision"] == "deny"
    assert record["tty"] is None
    # The same subsystem request from plain ssh: stdout (the sftp stream) stays empty and
    # the exit code is the denial's. sshd discards a subsystem's stderr (session.c), so
    # for sftp the guest sees no line at all - only the exit status and the record.
    before = len(world.records())
    plain = world.ssh("guest", "-s", command=["sftp"])
    assert plain.returncode == 1
    assert plain.stdout == b""
    (again,) = world.new_records(before)
    assert again["decision"] == "deny"
    assert again["exit_code"] == 1


@pytest.mark.corpus("SUB-02", "SUB-04")
@pytest.mark.parametrize("legacy", [False, True], ids=["scp-sftp", "scp-O"])
def test_scp_in_either_protocol_is_denied(world, adv_dir, legacy) -> None:
    target = adv_dir / "copied"
    options = _sftp_options(world, "guest")
    guest = world.accounts.guest.name
    if legacy:
        argv = ["scp", *options, "-O", f"{guest}@127.0.0.1:/etc/hostname", str(target)]
        expect = "scp -f /etc/hostname"
    else:
        source = gktest.write_root_file(adv_dir / "f.txt", "data\n")
        argv = ["scp", *options, str(source), f"{guest}@127.0.0.1:{world.scratch}/"]
        expect = "/usr/lib/openssh/sftp-server"
    before = len(world.records())
    result = subprocess.run(
        argv, capture_output=True, timeout=30, check=False, env=gksshd.client_env()
    )
    assert result.returncode != 0
    assert not target.exists()
    assert not (world.scratch / "f.txt").exists()
    (record,) = world.new_records(before)
    assert record["original_command"] == expect
    assert record["decision"] == "deny"


@pytest.mark.corpus("SUB-07")
def test_internal_sftp_arrives_as_a_request_and_is_denied(world) -> None:
    options = world.site.client_options(world.keys["guest"], world.internal.port)
    options = ["-P" if o == "-p" else o for o in options]
    argv = ["sftp", *options, "-b", "-", f"{world.accounts.guest.name}@127.0.0.1"]
    before = len(world.records())
    result = subprocess.run(
        argv, input=b"ls\n", capture_output=True, timeout=30, check=False,
        env=gksshd.client_env(),
    )  # fmt: skip
    assert result.returncode != 0
    (record,) = world.new_records(before)
    assert record["original_command"] == "internal-sftp -l INFO"
    assert record["decision"] == "deny"


@pytest.mark.corpus("SUB-05")
def test_an_unknown_subsystem_is_refused_by_sshd_before_the_gatekeeper(world) -> None:
    before = len(world.records())
    result = world.ssh("guest", "-s", command=["nosuchsubsys"])
    assert result.returncode == 255
    assert b"subsystem request failed" in result.stderr
    world.sentinel()
    assert len(world.records()) == before + 1


@pytest.mark.corpus("PARSE-19")
def test_a_command_too_long_to_exec_never_reaches_the_gatekeeper(world, corpus, adv_dir) -> None:
    """PARSE-19: above MAX_ARG_STRLEN the login shell cannot even be exec'd.

    The DoS is sshd's to log; we show the connection fails and no record exists.
    (ssh's own argv has the same limit: the command goes in through an ssh_config.)
    """
    raw = gkunit.corpus_command(corpus["PARSE-19"])
    assert raw is not None
    config = gktest.write_root_file(adv_dir / "big.conf", "RemoteCommand " + raw.decode() + "\n")
    before = len(world.records())
    result = world.ssh("guest", "-F", str(config))
    assert result.returncode != 0
    assert b"Argument list too long" in result.stderr
    world.sentinel()
    assert len(world.records()) == before + 1


# --------------------------------------------------------------------------- start-up files


@contextlib.contextmanager
def planted(path: Path, text: str, owner: gktest.Account | None = None) -> Iterator[Path]:
    """A file in an account's home for one test (root-owned unless ``owner``)."""
    made_dirs = []
    parent = path.parent
    while not parent.exists():
        made_dirs.append(parent)
        parent = parent.parent
    for directory in reversed(made_dirs):
        directory.mkdir(mode=0o755)
        if owner is not None:
            os.chown(directory, owner.uid, owner.gid)
    path.write_text(text)
    path.chmod(0o755)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        for directory in made_dirs:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.corpus("ENV-04", "VIM-05")
def test_a_planted_bashrc_runs_only_in_the_weak_deployment(world, corpus) -> None:
    """ENV-04: bash reads ~/.bashrc for sshd's ``bash -c`` before the ForceCommand.

    Weak account (bash, home it owns): the planted .bashrc runs the guest's command and
    the gatekeeper never starts; doctor flags the shell and the home. Hardened guest
    (dash, root-owned home) with the very same .bashrc: ignored, the gatekeeper denies.
    VIM-05 is the same chain with the .bashrc written by an allowed editor: containment
    comes from the account, which is exactly what doctor checks here.
    """
    command = corpus["ENV-04"]["vector"]["original_command"]
    weak_rc = Path(world.weak.home) / ".bashrc"
    with planted(weak_rc, BASHRC_ATTACK, owner=world.weak):
        bypass = world.ssh("weak", command=[command])
        flagged = world.doctor(world.policy, world.hardened)
    assert b"GATEKEEPER-BYPASSED" in bypass.stdout, "the weak deployment must show the bypass"
    assert gs.status(flagged, "login_shell", world.weak.name) == "fail"
    assert gs.status(flagged, "home", world.weak.name) == "fail"
    assert gs.status(flagged, "login_shell", world.accounts.guest.name) == "ok"
    assert gs.status(flagged, "home", world.accounts.guest.name) == "ok"

    guest_rc = Path(world.accounts.guest.home) / ".bashrc"
    with planted(guest_rc, BASHRC_ATTACK):
        result = world.ssh("guest", command=[command])
    assert b"GATEKEEPER-BYPASSED" not in result.stdout
    assert b"uid=" not in result.stdout
    assert result.returncode == 64
    (record,) = world.journal.messages(f"GATEKEEPER_CONNECTION_ID={_ref(result.stderr)}")
    assert record["original_command"] == command


@pytest.mark.corpus("ENV-05", "ENV-07")
def test_ssh_rc_and_ssh_environment_are_ignored(world) -> None:
    """ENV-05: ~/.ssh/rc never runs with a config ForceCommand (and PermitUserRC no).
    ENV-07: ~/.ssh/environment is ignored with the global PermitUserEnvironment no."""
    marker = world.scratch / gs.unique("sshrc-ran")
    home = Path(world.accounts.guest.home)
    with (
        planted(home / ".ssh" / "rc", f"#!/bin/sh\ntouch {marker}\n"),
        planted(home / ".ssh" / "environment", "GK_SSH_ENVIRONMENT=injected\nBASH_ENV=/x\n"),
    ):
        seen = world.probe_env("guest", command=["list"])
    assert seen.env is not None
    assert "GK_SSH_ENVIRONMENT" not in seen.env
    assert "BASH_ENV" not in seen.env
    assert not marker.exists()
    values = world.site.effective(world.probe, world.accounts.guest.name)
    assert values["permituserrc"] == ["no"]
    assert values["permituserenvironment"] == ["no"]


@pytest.mark.corpus("ENV-08", "ENV-10")
def test_pam_environment_only_injects_into_a_guest_writable_home(world, adv_dir) -> None:
    """ENV-08/ENV-10: Debian's pam_env ``user_readenv=1`` reads ~/.pam_environment.

    Weak account (writable home): whatever it writes there (``LD_PRELOAD``,
    ``BASH_ENV``...) reaches its login shell and the gatekeeper's process - before
    Python starts, so ``-I`` cannot help - and doctor flags it. (bash run by sshd reads
    ~/.bashrc instead of ``BASH_ENV``; ENV-10's ``BASH_ENV`` bites any bash *script* on
    the way, which is why the gatekeeper's children never inherit it.) Hardened guest:
    the root-owned home takes no such file. If a Debian release's PAM stops reading user
    files, nothing arrives in either case, and doctor must agree.
    """
    text = f"GK_PAM_PROBE DEFAULT=injected\nBASH_ENV DEFAULT={adv_dir}/evil.sh\n"
    with planted(Path(world.weak.home) / ".pam_environment", text, owner=world.weak):
        seen = world.probe_env("weak", command=["list"])
        flagged = world.doctor(world.probe_policy, world.probe)
    assert seen.env is not None
    reads_user_env = seen.env.get("GK_PAM_PROBE") == "injected"
    assert (seen.env.get("BASH_ENV") == f"{adv_dir}/evil.sh") == reads_user_env
    assert (gs.status(flagged, "pam.user_readenv", world.weak.name) == "fail") == reads_user_env

    # Hardened: the guest cannot create the file at all, and nothing arrives.
    guest = world.accounts.guest
    attempt = gktest.run_as(
        guest, ["/bin/sh", "-c", "echo 'X DEFAULT=y' > \"$HOME/.pam_environment\""],
        {"HOME": guest.home, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert attempt.returncode != 0
    assert not (Path(guest.home) / ".pam_environment").exists()
    clean = world.probe_env("guest", command=["list"])
    assert clean.env is not None
    assert "GK_PAM_PROBE" not in clean.env
    assert gs.status(flagged, "pam.user_readenv", guest.name) in ("ok", "warn")


@pytest.mark.corpus("ENV-15")
def test_a_nologin_shell_breaks_the_forcecommand_and_doctor_says_so(world) -> None:
    """ENV-15: sshd runs ForceCommand through the login shell; nologin never starts us."""
    before = len(world.records("nologin"))
    result = world.ssh("nologin", command=["list"])
    assert result.returncode != 0
    assert b"not available" in result.stdout + result.stderr
    world.sentinel()
    assert len(world.records("nologin")) == before
    flagged = world.doctor(world.policy, world.hardened)
    assert gs.status(flagged, "login_shell", world.nologin.name) == "fail"
    assert gs.status(flagged, "login_shell", world.accounts.guest.name) == "ok"
    good = world.ssh("guest", command=["list"])
    assert good.returncode == 0
    assert b"shared" in good.stdout


@pytest.mark.corpus("ENV-16")
def test_a_guest_writable_authorized_keys_is_flagged(world) -> None:
    """ENV-16: a guest that can edit its keys keeps access after revocation.

    Weak: AuthorizedKeysFile points at a guest-owned file - doctor fails it. Hardened:
    root-owned ``authorized_keys/%u``, which the guest cannot append to.
    """
    guest = world.accounts.guest
    weak = world.doctor(world.probe_policy, world.weak_sshd)
    assert gs.status(weak, "authorized_keys", guest.name) == "fail"
    fine = world.doctor(world.policy, world.hardened)
    assert gs.status(fine, "authorized_keys", guest.name) == "ok"
    keys = world.site.root / "authorized_keys" / guest.name
    attempt = gktest.run_as(
        guest, ["/bin/sh", "-c", f"echo ssh-ed25519 AAAA >> {keys}"], {"PATH": "/usr/bin:/bin"}
    )
    assert attempt.returncode != 0
    assert "ssh-ed25519 AAAA\n" not in keys.read_text()


# --------------------------------------------------------------------------- identity


@pytest.mark.corpus("ID-01")
def test_ssh_user_auth_is_guest_writable_so_it_only_attributes(world, adv_dir) -> None:
    """ID-01: SSH_USER_AUTH is a file the guest account owns: attribution, not separation.

    Shown: the file the gatekeeper reads is owned by the guest (so code running as
    that account could rewrite it); the key the record names is the one sshd itself
    logged for the login (the cross-check an admin can make); and ``check`` warns when
    two people on one account get different modes - the config-check this case asks
    for. Privilege separation is one account per guest (SPEC §4).
    """

    def owner_of_auth_file(_pid: int, env: dict[str, str]) -> dict[str, Any]:
        return {"uid": os.stat(env["SSH_USER_AUTH"]).st_uid}

    seen = world.probe_env("guest", command=["whoami"], during=owner_of_auth_file)
    assert seen.env is not None
    assert seen.extra["uid"] == world.accounts.guest.uid
    assert seen.record is not None
    fingerprint = seen.record["key_fingerprint"]
    assert fingerprint == world.keys["guest"].fingerprint
    assert f"Accepted publickey for {world.accounts.guest.name}" in world.probe.log_text()
    assert fingerprint in world.probe.log_text()

    shared_account = gktest.write_root_file(
        adv_dir / "people.toml",
        f"""version = 1
[people.alice]
keys = ["{world.keys["pairer"].fingerprint}"]
[people.bob]
keys = ["{world.keys["guest"].fingerprint}"]
[sessions.shared]
socket = "{world.host.socket}"
owner = "{world.accounts.host.name}"
target = "shared"
[[grant]]
people = ["alice"]
session = "shared"
mode = "read-write"
[[grant]]
people = ["bob"]
session = "shared"
mode = "read-only"
""",
    )
    check = subprocess.run(
        [str(gktest.GATEKEEPERCTL), "check", "--policy", str(shared_account)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "get different modes" in check.stdout + check.stderr


@pytest.mark.corpus("ID-02")
def test_the_config_forcecommand_beats_a_key_command(world) -> None:
    guest = world.accounts.guest
    keys = world.site.root / "authorized_keys" / guest.name
    original = keys.read_text()
    keys.write_text(f'command="/bin/echo KEY-COMMAND-WON",restrict {world.keys["guest"].public}\n')
    try:
        result = world.ssh("guest", command=["list"])
    finally:
        keys.write_text(original)
    assert b"KEY-COMMAND-WON" not in result.stdout
    assert result.returncode == 0
    assert b"shared" in result.stdout
    assert "forced-command (config)" in world.hardened.log_text()


@pytest.mark.corpus("ID-06")
def test_a_forged_journald_record_carries_the_forgers_uid(world) -> None:
    """ID-06: anyone can send SYSLOG_IDENTIFIER=gatekeeper; journald's _UID tells the truth,
    and ``gatekeeperctl audit`` checks it and flags the record FORGED."""
    outsider = world.accounts.outsider
    ref = secrets.token_hex(8)
    message = (
        '{"event":"connect","decision":"allow","user":"root","uid":0,'
        f'"connection_id":"{ref}","pid":1}}'
    )
    # A hand-built native-protocol datagram, trusted-field claim included.
    script = (
        "import socket, sys\n"
        "fields = {'MESSAGE': sys.argv[2], 'SYSLOG_IDENTIFIER': 'gatekeeper', '_UID': '0',\n"
        "          'GATEKEEPER_CONNECTION_ID': sys.argv[3], 'GATEKEEPER_DECISION': 'allow'}\n"
        "data = ''.join(f'{k}={v}\\n' for k, v in fields.items()).encode()\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "s.sendto(data, sys.argv[1])\n"
    )
    sent = gktest.run_as(
        outsider,
        [str(gktest.PYTHON), "-I", "-c", script, world.journal.socket, message, ref],
        {"PATH": "/usr/bin:/bin"},
    )
    assert sent.returncode == 0, sent.stderr
    (entry,) = world.journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")
    assert entry["_UID"] == str(outsider.uid)
    audit = subprocess.run(
        [
            str(gktest.GATEKEEPERCTL), "audit", "--policy", str(world.policy), "--json",
            "--connection", ref, "--launcher", str(gktest.GATEKEEPER),
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    rows = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [r["trust"] for r in rows] == ["forged"]


# --------------------------------------------------------------------------- the happy path


def _detach(term: gksshd.Terminal, pane: str) -> str:
    """``C-b d`` until the client leaves; returns the pane's ``dead status|signal``.

    Keys typed while tmux is still querying the new terminal's features may be consumed
    by that exchange, hence the retries.
    """

    def dead() -> str | None:
        out = term.tmux.out(
            "display-message",
            "-p",
            "-t",
            pane,
            "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}",
        )
        flag, _, rest = out.strip().partition("|")
        return rest if flag == "1" else None

    for _attempt in range(5):
        term.tmux.cmd("send-keys", "-t", pane, "C-b", "d")
        with contextlib.suppress(gktest.WaitTimeoutError):
            return gktest.wait_until(dead, 3, f"{pane} to exit")
    raise AssertionError(term.tmux.capture(pane))


@pytest.mark.corpus("OK-01", "OK-02")
@pytest.mark.parametrize("command", [["attach", "shared"], []], ids=["attach", "default"])
def test_a_guest_with_a_terminal_attaches_read_only_with_one_record(world, command) -> None:
    """OK-01/OK-02 through sshd on a real pty: exact argv, read-only, one allow record."""
    directory = world.site.root / gs.unique("term")
    directory.mkdir()
    with gksshd.terminal(directory) as term:
        before = len(world.records())
        pane = term.run(
            world.hardened.ssh_argv(
                world.keys["guest"], world.accounts.guest.name, "-tt", command=command
            )
        )
        term.tmux.wait_screen(pane, world.host.marker, timeout=20)
        clients = gktest.wait_until(
            lambda: world.host.tmux.out("list-clients", "-F", "#{client_pid} #{client_readonly}"),
            10,
            "the guest's tmux client",
        )
        records = world.journal.wait_for(
            f"GATEKEEPER_USER={world.accounts.guest.name}", count=before + 1
        )
        _detach(term, pane)
        # The guest's client is gone from the host's server once it detached.
        gktest.wait_until(
            lambda: world.host.tmux.out("list-clients") == "", 10, "the guest to leave"
        )
    record = json.loads(records[-1]["MESSAGE"])
    assert record["decision"] == "allow"
    assert record["argv"] == [
        "/usr/bin/tmux", "-N", "-S", world.host.socket, "attach-session", "-E", "-r",
        "-t", "=shared",
    ]  # fmt: skip
    assert clients.split() == [str(record["pid"]), "1"]
    assert len(world.records()) == before + 1
