"""ssh-gatekeeper benchmark: per-login cost, policy size and concurrency, as ratios from one run.

Run it through ``bench/run`` (which builds the production-like environment
first); ``bench/run --help`` lists the options. Everything it starts is
stopped by pid and everything it creates is removed, also on Ctrl-C:

* a production-like venv (``uv sync --frozen --no-dev --no-editable
  --compile-bytecode``) and its isolated ``gatekeeper`` launcher;
* a throwaway guest account (``/bin/sh``, root-owned home);
* a private systemd-journald namespace for the audit records;
* a throwaway venv with authprogs 0.7.5 from PyPI (the peer baseline);
* one sshd on 127.0.0.1 with fresh host keys and three ports: ForceCommand
  gatekeeper, ForceCommand ``/bin/true``, and gatekeeper for the concurrency run;
* the gatekeeper's cache files for the bench's own policies.

Parts: (1) start->exec beside ``python3 -I -c pass``, ``python -I -c "import
structlog"`` and authprogs; (2) end-to-end ssh logins, gatekeeper vs
``/bin/true``; (3) a 10-grant vs a 10,000-grant policy; (4) N simultaneous
logins, every one audited exactly once; (5) pane output throughput with the
session recorder on vs off; (6) the authorized-keys command (sshd, every offered
key) beside ``python3 -I -c pass``. Variants run alternately, round by
round, so a load change on the machine hits all of them alike; the table
shows medians and the ratios of medians. Nothing here is a test: it asserts
nothing and reports the targets as met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pty
import pwd
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
JOURNALD = "/lib/systemd/systemd-journald"
SSHD = "/usr/sbin/sshd"
CACHE_DIR = "/var/cache/ssh-gatekeeper"
AUTHPROGS = "authprogs==0.7.5"

#: The targets of issue 8; reported, never asserted.
TARGETS = {
    "start_exec_vs_structlog": 1.30,
    "end_to_end_vs_true": 1.35,
    "policy_10k_vs_10": 1.25,
    "authorized_keys_vs_python": 2.5,
}


def log(message: str) -> None:
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run(list(argv), check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}")
    return result


def median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) * 1000


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# --------------------------------------------------------------------------- set-up pieces


@dataclass(frozen=True)
class Guest:
    name: str
    uid: int
    gid: int
    home: str

    @property
    def groups(self) -> list[int]:
        return os.getgrouplist(self.name, self.gid)


def create_guest(work: Path, stack: contextlib.ExitStack) -> Guest:
    name = f"gkbench-{secrets.token_hex(3)}"
    home = work / "home"
    home.mkdir(mode=0o755)
    run(
        [
            "useradd",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            "/bin/sh",
            "--user-group",
            name,
        ]
    )
    stack.callback(delete_guest, name)
    run(["usermod", "-p", "*", name])  # key login possible, no password
    entry = pwd.getpwnam(name)
    log(f"guest account {name}")
    return Guest(name, entry.pw_uid, entry.pw_gid, str(home))


def delete_guest(name: str) -> None:
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        # Every process the account ran was a child of the bench or of its sshd,
        # both already waited for: userdel finds none left.
        subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    interval = 0.01
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # polling interval, not synchronisation
        interval = min(interval * 2, 0.2)


@dataclass
class Journal:
    namespace: str

    @property
    def socket(self) -> str:
        return f"/run/systemd/journal.{self.namespace}/socket"

    def entries(self, identifier: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            [
                "journalctl",
                f"--namespace={self.namespace}",
                "-o",
                "json",
                "--no-pager",
                f"SYSLOG_IDENTIFIER={identifier}",
            ],
            capture_output=True,
            check=False,
            text=True,
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def start_journald(stack: contextlib.ExitStack) -> Journal:
    namespace = f"gkbench{os.getpid()}"
    process = subprocess.Popen(
        [JOURNALD, namespace], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = Journal(namespace)
    stack.callback(remove_namespace, namespace)
    stack.callback(stop, process)
    wait_for(lambda: Path(journal.socket).is_socket(), 10, "the journald socket")
    return journal


def remove_namespace(namespace: str) -> None:
    machine_id = Path("/etc/machine-id").read_text().strip()
    for path in (
        f"/var/log/journal/{machine_id}.{namespace}",
        f"/run/log/journal/{machine_id}.{namespace}",
        f"/run/systemd/journal.{namespace}",
    ):
        shutil.rmtree(path, ignore_errors=True)


def build_venv(work: Path, uv: str) -> Path:
    """The production-like environment: no dev group, not editable, bytecode compiled."""
    venv = work / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": SYSTEM_PYTHON,
        "UV_PYTHON_DOWNLOADS": "never",
    }
    run(
        [uv, "sync", "-q", "--frozen", "--no-dev", "--no-editable", "--compile-bytecode"],
        cwd=REPO,
        env=env,
    )
    python = venv / "bin" / "python"
    launcher = run([str(python), "-m", "gatekeeper.launcher", str(python)]).stdout
    (venv / "bin" / "gatekeeper").write_text(launcher)
    (venv / "bin" / "gatekeeper").chmod(0o755)
    keys = run([str(python), "-m", "gatekeeper.launcher", str(python), "authorized-keys"]).stdout
    (venv / "bin" / "gatekeeper-authorized-keys").write_text(keys)
    (venv / "bin" / "gatekeeper-authorized-keys").chmod(0o755)
    run(["chmod", "-R", "go-w", str(venv)])
    return venv


def install_authprogs(work: Path) -> tuple[Path | None, str]:
    """authprogs 0.7.5 in a throwaway venv, from PyPI; ``(None, why)`` if it cannot be had."""
    venv = work / "authprogs-venv"
    try:
        run([SYSTEM_PYTHON, "-m", "venv", str(venv)])
        run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", AUTHPROGS],
            timeout=300,
        )
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        return None, f"authprogs could not be installed: {str(error).strip()[-300:]}"
    config = work / "authprogs"
    (config / "conf.d").mkdir(parents=True)
    (config / "authprogs.yaml").write_text("-\n  allow:\n    - command: /bin/true\n")
    run(["chmod", "-R", "go-w,a+rX", str(config), str(venv)])
    return venv / "bin" / "authprogs", "authprogs 0.7.5 from PyPI"


def policy_text(guest: str, audit_socket: str, identifier: str, grants: int) -> str:
    """``grants`` grants for as many distinct users; the guest's is the last one."""
    lines = [
        "version = 1",
        "[audit]",
        f'identifier = "{identifier}"',
        f'journal_socket = "{audit_socket}"',
        "[programs.true]",
        'argv = ["/bin/true"]',
    ]
    for index in range(grants - 1):
        lines += ["[[grant]]", f'users = ["user{index}"]', 'program = "true"']
    lines += ["[[grant]]", f'users = ["{guest}"]', 'program = "true"']
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- measuring


@dataclass
class Variant:
    name: str
    argv: list[str]
    env: dict[str, str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failures: int = 0
    first_error: str = ""


def spawn_and_wait(
    variant: Variant, guest: Guest | None, stdin: int, errors: int
) -> tuple[float, float, int]:
    """One run: wall seconds from spawn to exit, the child's CPU seconds, exit status.

    stderr goes to ``errors`` (a file, truncated before each run) so that a
    failure can be reported; stdout is discarded.
    """
    kwargs: dict[str, Any] = {}
    if guest is not None:
        kwargs = {"user": guest.uid, "group": guest.gid, "extra_groups": guest.groups}
    os.ftruncate(errors, 0)
    os.lseek(errors, 0, os.SEEK_SET)
    start = time.perf_counter()
    process = subprocess.Popen(
        variant.argv,
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        env=variant.env,
        cwd="/",
        **kwargs,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 and not variant.first_error:
        os.lseek(errors, 0, os.SEEK_SET)
        text = os.read(errors, 2000).decode(errors="replace").strip()
        variant.first_error = f"exit {process.returncode}: {text}"
    return wall, usage.ru_utime + usage.ru_stime, process.returncode


def alternate(
    variants: Sequence[Variant], rounds: int, warmup: int, guest: Guest | None, stdin: int
) -> None:
    """Rounds of one run per variant, the order rotated every round."""
    errors = os.memfd_create("bench-stderr")
    try:
        for round_index in range(warmup + rounds):
            shift = round_index % len(variants)
            for variant in [*variants[shift:], *variants[:shift]]:
                wall, cpu, code = spawn_and_wait(variant, guest, stdin, errors)
                if code != 0:
                    variant.failures += 1
                if round_index >= warmup:
                    variant.wall.append(wall)
                    variant.cpu.append(cpu)
    finally:
        os.close(errors)


# --------------------------------------------------------------------------- sshd


@dataclass
class Sshd:
    ports: dict[str, int]
    key: Path
    known_hosts: Path
    process: subprocess.Popen[bytes]

    def client(self, guest: Guest, port: str, command: str) -> list[str]:
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-tt",
            "-i",
            str(self.key),
            "-p",
            str(self.ports[port]),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "ConnectTimeout=120",
            f"{guest.name}@127.0.0.1",
            command,
        ]


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_sshd(
    work: Path, guest: Guest, forced: dict[str, str], stack: contextlib.ExitStack
) -> Sshd:
    """One sshd, one port per ForceCommand; files under /run (StrictModes rejects /tmp)."""
    site = Path(tempfile.mkdtemp(prefix="gk-bench-", dir="/run"))
    stack.callback(shutil.rmtree, site, ignore_errors=True)
    site.chmod(0o755)
    log(f"sshd directory {site}")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(site / "host_key")])
    key = work / "client_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    keys = site / "keys"
    keys.mkdir(mode=0o755)
    (keys / guest.name).write_text(Path(f"{key}.pub").read_text())
    (keys / guest.name).chmod(0o644)
    ports = dict(zip(forced, free_ports(len(forced)), strict=True))
    lines = [f"Port {port}" for port in ports.values()]
    lines += [
        "ListenAddress 127.0.0.1",
        f"HostKey {site / 'host_key'}",
        f"PidFile {site / 'sshd.pid'}",
        "UsePAM no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthenticationMethods publickey",
        f"AuthorizedKeysFile {keys}/%u",
        "PermitRootLogin no",
        f"AllowUsers {guest.name}",
        "MaxStartups 300:30:400",
        "MaxSessions 10",
        "PermitUserEnvironment no",
        "UseDNS no",
        "PrintMotd no",
        "LogLevel ERROR",
    ]
    supported = subprocess.run(
        [SSHD, "-T", "-f", "/dev/null"], check=False, capture_output=True, text=True
    )
    if "persourcepenalties" in supported.stdout:
        lines.append("PerSourcePenalties no")  # OpenSSH >= 9.8: 200 logins from one address
    for name, port in ports.items():
        lines += [
            f"Match LocalPort {port}",
            f"  ForceCommand {forced[name]}",
            "  DisableForwarding yes",
            "  PermitTunnel no",
            "  PermitTTY yes",
            "  PermitUserRC no",
            "  ExposeAuthInfo yes",
        ]
    config = site / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    run([SSHD, "-t", "-f", str(config)])
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stack.callback(stop, process)

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"sshd exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        for port in ports.values():
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) != 0:
                    return False
        return True

    wait_for(listening, 10, "sshd to listen")
    host_public = Path(f"{site / 'host_key'}.pub").read_text().strip()
    known_hosts = work / "known_hosts"
    known_hosts.write_text(
        "".join(f"[127.0.0.1]:{port} {host_public}\n" for port in ports.values())
    )
    return Sshd(ports, key, known_hosts, process)


# --------------------------------------------------------------------------- the parts


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def row(self, what: str, value: str, target: str = "") -> None:
        self.rows.append((what, value, target))


def failure_text(report: Report, variant: Variant) -> str:
    """``, N FAILED`` for the table, and the first failure's stderr as a note."""
    if not variant.failures:
        return ""
    report.notes.append(f"{variant.name} failed {variant.failures}x; first: {variant.first_error}")
    return f", {variant.failures} FAILED"


def verdict(ratio: float, limit: float) -> str:
    return f"<= {limit:.2f}x: {'met' if ratio <= limit else 'NOT met'}"


def part_start_exec(report: Report, ctx: Context, rounds: int, authprogs: Path | None) -> None:
    tty = ctx.tty_name
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": ctx.guest.home,
        "USER": ctx.guest.name,
        "LOGNAME": ctx.guest.name,
        "SHELL": "/bin/sh",
        "TERM": "xterm",
        "SSH_TTY": tty,
        "SSH_CONNECTION": "127.0.0.1 50022 127.0.0.1 22",
        "SSH_CLIENT": "127.0.0.1 50022 22",
    }
    gk_env = {**base, "SSH_ORIGINAL_COMMAND": "run true"}
    variants = [
        Variant("python3 -I -c pass", [SYSTEM_PYTHON, "-I", "-c", "pass"], base),
        Variant(
            "python -I -c 'import structlog'",
            [str(ctx.python), "-I", "-c", "import structlog"],
            base,
        ),
        Variant(
            "gatekeeper (cached policy)",
            [str(ctx.gatekeeper), "--policy", str(ctx.policy_small)],
            gk_env,
        ),
        Variant(
            "gatekeeper (no cache: pydantic)",
            [str(ctx.gatekeeper), "--policy", str(ctx.policy_nocache)],
            gk_env,
        ),
    ]
    if authprogs is not None:
        ap_env = {**base, "SSH_ORIGINAL_COMMAND": "/bin/true"}
        argv = [
            str(authprogs),
            "--run",
            "--configfile",
            str(ctx.work / "authprogs/authprogs.yaml"),
            "--configdir",
            str(ctx.work / "authprogs/conf.d"),
        ]
        variants.append(Variant("authprogs 0.7.5 (allows /bin/true)", argv, ap_env))
    alternate(variants, rounds, ctx.warmup, ctx.guest, ctx.tty_fd)
    by = {v.name: v for v in variants}
    gk = by["gatekeeper (cached policy)"]
    floor = by["python3 -I -c pass"]
    structlog_floor = by["python -I -c 'import structlog'"]
    for variant in variants:
        failed = failure_text(report, variant)
        report.row(
            f"(1) {variant.name}",
            f"{median_ms(variant.wall):.1f} ms (cpu {median_ms(variant.cpu):.1f} ms){failed}",
        )
    ratio = median_ms(gk.wall) / median_ms(structlog_floor.wall)
    report.row(
        "(1) gatekeeper / import structlog",
        f"{ratio:.2f}x",
        verdict(ratio, TARGETS["start_exec_vs_structlog"]),
    )
    report.row(
        "(1) gatekeeper / python3 -I -c pass", f"{median_ms(gk.wall) / median_ms(floor.wall):.2f}x"
    )
    nocache = by["gatekeeper (no cache: pydantic)"]
    report.row(
        "(1) gatekeeper without cache / with cache",
        f"{median_ms(nocache.wall) / median_ms(gk.wall):.2f}x",
    )
    if authprogs is not None:
        peer = by["authprogs 0.7.5 (allows /bin/true)"]
        report.row(
            "(1) gatekeeper / authprogs", f"{median_ms(gk.wall) / median_ms(peer.wall):.2f}x"
        )
    report.data["start_exec"] = {
        v.name: {"wall": v.wall, "cpu": v.cpu, "failures": v.failures} for v in variants
    }


def part_authorized_keys(report: Report, ctx: Context, rounds: int) -> None:
    """(6) sshd's AuthorizedKeysCommand, once per offered key, beside ``python3 -I -c pass``."""
    key = ctx.work / "bench-key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    other = ctx.work / "bench-other"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)])
    line = Path(f"{key}.pub").read_text().split()
    unknown = Path(f"{other}.pub").read_text().split()
    policy = ctx.work / "policy-keys.toml"
    policy.write_text(
        policy_text(ctx.guest.name, ctx.journal.socket, "gkbench-keys", 10)
        + '[identity]\nsource = "authorized-keys-command"\n'
        + f'[people.bench]\nkeys = ["{line[0]} {line[1]}"]\n'
    )
    policy.chmod(0o644)
    ctx.cached_paths.append(str(policy))
    run([str(ctx.ctl), "check", str(policy)])
    command = str(ctx.venv / "bin" / "gatekeeper-authorized-keys")
    head = [command, "--policy", str(policy), ctx.guest.name]
    env = {"PATH": "/usr/bin:/bin"}
    variants = [
        Variant("python3 -I -c pass", [SYSTEM_PYTHON, "-I", "-c", "pass"], env),
        Variant("authorized-keys (listed key)", [*head, line[0], line[1]], env),
        Variant("authorized-keys (unknown key)", [*head, unknown[0], unknown[1]], env),
    ]
    # The listed key must really be answered, or both variants measure a denial.
    answered = run(variants[1].argv, env=env).stdout
    if 'environment="GATEKEEPER_PERSON=bench"' not in answered:
        report.notes.append(f"(6) the listed key was NOT answered: {answered!r}")
    alternate(variants, rounds, ctx.warmup, None, ctx.tty_fd)
    by = {v.name: v for v in variants}
    floor = median_ms(by["python3 -I -c pass"].wall)
    for variant in variants:
        failed = failure_text(report, variant)
        report.row(
            f"(6) {variant.name}",
            f"{median_ms(variant.wall):.1f} ms (cpu {median_ms(variant.cpu):.1f} ms){failed}",
        )
    for name in ("authorized-keys (listed key)", "authorized-keys (unknown key)"):
        ratio = median_ms(by[name].wall) / floor
        report.row(
            f"(6) {name} / python3 -I -c pass",
            f"{ratio:.2f}x",
            verdict(ratio, TARGETS["authorized_keys_vs_python"]),
        )
    report.data["authorized_keys"] = {v.name: {"wall": v.wall, "cpu": v.cpu} for v in variants}


def part_end_to_end(report: Report, ctx: Context, sshd: Sshd, rounds: int) -> None:
    variants = [
        Variant(
            "ssh, ForceCommand gatekeeper",
            sshd.client(ctx.guest, "gatekeeper", "run true"),
            ctx.client_env,
        ),
        Variant(
            "ssh, ForceCommand /bin/true",
            sshd.client(ctx.guest, "true", "run true"),
            ctx.client_env,
        ),
        Variant(
            "ssh, ForceCommand python -I -c 'import structlog'",
            sshd.client(ctx.guest, "structlog", "run true"),
            ctx.client_env,
        ),
    ]
    alternate(variants, rounds, ctx.warmup, None, subprocess.DEVNULL)
    gk, true, floor = variants
    for variant in variants:
        failed = failure_text(report, variant)
        report.row(f"(2) {variant.name}", f"{median_ms(variant.wall):.1f} ms{failed}")
    ratio = median_ms(gk.wall) / median_ms(true.wall)
    report.row(
        "(2) gatekeeper / /bin/true over ssh",
        f"{ratio:.2f}x",
        verdict(ratio, TARGETS["end_to_end_vs_true"]),
    )
    report.row(
        "(2) python -I -c 'import structlog' / /bin/true over ssh (reference)",
        f"{median_ms(floor.wall) / median_ms(true.wall):.2f}x",
    )
    report.data["end_to_end"] = {v.name: {"wall": v.wall, "failures": v.failures} for v in variants}


def part_policy_size(
    report: Report, ctx: Context, rounds: int, sizes: tuple[int, int], check_rounds: int
) -> None:
    small, large = sizes
    paths = {}
    for size in sizes:
        path = ctx.work / f"policy-{size}.toml"
        path.write_text(policy_text(ctx.guest.name, ctx.journal.socket, "gkbench-size", size))
        path.chmod(0o644)
        ctx.cached_paths.append(str(path))
        paths[size] = path
    check_times: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(check_rounds):
        for size in sizes:
            start = time.perf_counter()
            run([str(ctx.ctl), "check", str(paths[size])])
            check_times[size].append(time.perf_counter() - start)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": ctx.guest.home,
        "TERM": "xterm",
        "SSH_TTY": ctx.tty_name,
        "SSH_CONNECTION": "127.0.0.1 50022 127.0.0.1 22",
        "SSH_ORIGINAL_COMMAND": "run true",
    }
    variants = [
        Variant(f"{size} grants/users", [str(ctx.gatekeeper), "--policy", str(paths[size])], env)
        for size in sizes
    ]
    alternate(variants, rounds, ctx.warmup, ctx.guest, ctx.tty_fd)
    for variant, size in zip(variants, sizes, strict=True):
        failed = failure_text(report, variant)
        report.row(
            f"(3) start->exec, {variant.name} (cached)", f"{median_ms(variant.wall):.1f} ms{failed}"
        )
        report.row(
            f"(3) gatekeeperctl check, {size} grants", f"{median_ms(check_times[size]):.0f} ms"
        )
    ratio = median_ms(variants[1].wall) / median_ms(variants[0].wall)
    report.row(
        f"(3) {large} / {small} grants, start->exec",
        f"{ratio:.2f}x",
        verdict(ratio, TARGETS["policy_10k_vs_10"]),
    )
    report.data["policy_size"] = {
        "start_exec": {v.name: v.wall for v in variants},
        "check": {str(k): v for k, v in check_times.items()},
    }


def part_concurrency(report: Report, ctx: Context, sshd: Sshd, logins: int) -> None:
    before = len(ctx.journal.entries("gkbench-conc"))
    argv = sshd.client(ctx.guest, "concurrent", "run true")
    started: dict[int, float] = {}
    processes = []
    for _ in range(logins):
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ctx.client_env,
        )
        started[process.pid] = time.perf_counter()
        processes.append(process)
    latencies: list[float] = []
    failures = 0
    for process in processes:
        _, status, _ = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        latencies.append(time.perf_counter() - started[process.pid])
        failures += process.returncode != 0
    total = max(latencies)

    def settled() -> list[dict[str, Any]] | None:
        entries = ctx.journal.entries("gkbench-conc")[before:]
        return entries if len(entries) >= logins - failures else None

    try:
        entries = wait_for(settled, 30, f"{logins} journal records")
    except RuntimeError:
        entries = ctx.journal.entries("gkbench-conc")[before:]
    records = [json.loads(entry["MESSAGE"]) for entry in entries]
    ids = {record["connection_id"] for record in records}
    allowed = sum(record["decision"] == "allow" for record in records)
    lost = logins - len(ids)
    report.row(
        f"(4) {logins} simultaneous logins: succeeded",
        f"{logins - failures}/{logins}",
        "0 failures: " + ("met" if failures == 0 else "NOT met"),
    )
    report.row(
        "(4) journald records (distinct connection ids, allow)",
        f"{len(records)} ({len(ids)}, {allowed})",
        "0 lost: " + ("met" if lost == 0 and len(records) == logins else "NOT met"),
    )
    report.row(
        "(4) login latency p50 / p95 / max",
        f"{percentile(latencies, 0.5) * 1000:.0f} / {percentile(latencies, 0.95) * 1000:.0f}"
        f" / {total * 1000:.0f} ms",
    )
    report.data["concurrency"] = {
        "latencies": latencies,
        "failures": failures,
        "records": len(records),
        "distinct": len(ids),
    }


# --------------------------------------------------------------------------- main


@dataclass
class Context:
    work: Path
    venv: Path
    guest: Guest
    journal: Journal
    tty_fd: int
    tty_name: str
    warmup: int
    policy_small: Path = Path()
    policy_nocache: Path = Path()
    cached_paths: list[str] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def gatekeeper(self) -> Path:
        return self.venv / "bin" / "gatekeeper"

    @property
    def ctl(self) -> Path:
        return self.venv / "bin" / "gatekeeperctl"

    @property
    def client_env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.work), "LANG": "C.UTF-8"}


def part_recording(report: Report, ctx: Context, rounds: int, megabytes: int) -> None:
    """(5) Pane output throughput with the recorder on vs off, side by side.

    One tmux server (root's, private socket), one pane; each round ``cat``s the
    same file and signals ``tmux wait-for``; with recording on, the round ends
    only when the recorder has written the final marker too (the pipe drained).
    """
    tmux = shutil.which("tmux") or "/usr/bin/tmux"
    sock = str(ctx.work / "rec-bench.sock")
    data = ctx.work / "rec-bench.txt"
    line = ("0123456789abcdefghijklmnopqrstuvwxyz" * 3)[:99] + "\n"
    with data.open("w") as handle:
        handle.write(line * (megabytes * 1024 * 1024 // len(line)))
    recordings = ctx.work / "rec-bench"
    recordings.mkdir(mode=0o700)

    def cmd(*args: str) -> str:
        return run([tmux, "-S", sock, *args]).stdout

    cmd("-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", "200", "-y", "50", "sh")
    pane = cmd("display-message", "-p", "-t", "b:", "#{pane_id}").strip()
    recorder = (
        f"exec {ctx.python} -I -m gatekeeper.host.recorder --policy /nonexistent "
        f"--session bench --dir {recordings} --limit {64 * 1024 * 1024} --tmux {tmux} "
        f"--socket {sock} --size 200x50 #{{pane_id}} >/dev/null 2>&1"
    )
    timings: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for index in range(rounds + 1):
            for variant in ("off", "on"):
                if variant == "on":
                    cmd("pipe-pane", "-O", "-t", pane, recorder)
                token = secrets.token_hex(4)
                start = time.monotonic()
                # The output ends with END<token>, which the typed line itself does not contain.
                cmd("send-keys", "-t", pane,
                    f"cat {data}; printf '%s%s\\n' END {token}; tmux -S {sock} wait-for -S {token}",
                    "Enter")  # fmt: skip
                run([tmux, "-S", sock, "wait-for", token], timeout=600)
                if variant == "on":

                    def drained(t: str = f"END{token}") -> bool:
                        files = sorted(recordings.glob("*.cast"))
                        if not files:
                            return False
                        with files[-1].open("rb") as handle:
                            handle.seek(max(0, handle.seek(0, 2) - 4096))
                            return t.encode() in handle.read()

                    deadline = time.monotonic() + 600
                    while not drained() and time.monotonic() < deadline:
                        time.sleep(0.005)  # a fine poll: its latency counts in the timing
                    cmd("pipe-pane", "-t", pane)
                elapsed = time.monotonic() - start
                if index:  # round 0 warms the page cache
                    timings[variant].append(elapsed)
                for path in recordings.glob("*.cast"):
                    path.unlink()
                cmd("clear-history", "-t", pane)
    finally:
        with contextlib.suppress(RuntimeError):
            cmd("kill-server")
    off, on = statistics.median(timings["off"]), statistics.median(timings["on"])
    ratio = off / on
    report.data["recording"] = timings
    report.row(
        f"5 pane output, {megabytes} MB via cat, recording off", f"{megabytes / off:.1f} MB/s"
    )
    report.row(f"5 pane output, {megabytes} MB via cat, recording on", f"{megabytes / on:.1f} MB/s")
    report.row(
        "5 throughput ratio on/off",
        f"{ratio:.2f}x",
        f">= 0.90x: {'met' if ratio >= 0.9 else 'NOT met'}",
    )


def remove_caches(paths: list[str]) -> None:
    import hashlib  # noqa: PLC0415 - the bench's only use

    for path in paths:
        key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:32]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(CACHE_DIR, f"policy-{key}.json"))


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    osname = "unknown OS"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    ssh = subprocess.run([SSHD, "-V"], check=False, capture_output=True, text=True).stderr.strip()
    python = subprocess.run(
        [SYSTEM_PYTHON, "-V"], check=False, capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()[0]
    return (
        f"{osname}, {os.cpu_count()} x {cpu}, kernel {platform.release()}, {python}, "
        f"{ssh.split(',')[0]}; load average at start {load:.2f}"
    )


def render(report: Report, args: argparse.Namespace, started: datetime, seconds: float) -> str:
    width = max(len("measurement"), *(len(r[0]) for r in report.rows))
    vwidth = max(len("median / value"), *(len(r[1]) for r in report.rows))
    out = [
        f"machine: {report.data['machine']}",
        f"date:    {started.strftime('%Y-%m-%d %H:%M UTC')} ({seconds:.0f} s)",
        f"command: bench/run {' '.join(args.argv)}".rstrip(),
        "",
        f"| {'measurement'.ljust(width)} | {'median / value'.ljust(vwidth)} | target |",
        f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|--------|",
    ]
    out += [f"| {a.ljust(width)} | {b.ljust(vwidth)} | {c} |" for a, b, c in report.rows]
    out += [f"note: {note}" for note in report.notes]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="alternating rounds, parts 1-3")
    parser.add_argument("--ssh-rounds", type=int, default=30, help="alternating rounds, part 2")
    parser.add_argument("--warmup", type=int, default=3, help="rounds discarded first")
    parser.add_argument("--check-rounds", type=int, default=3, help="gatekeeperctl check runs")
    parser.add_argument("--logins", type=int, default=200, help="simultaneous logins, part 4")
    parser.add_argument("--sizes", default="10,10000", help="small,large policy (part 3)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 rounds, 5 logins, 10 vs 100 grants"
    )
    parser.add_argument("--venv", type=Path, help="use this venv instead of building one")
    parser.add_argument("--uv", default="", help="uv binary (bench/run passes the bootstrap's)")
    parser.add_argument("--no-authprogs", action="store_true", help="skip the peer baseline")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    parser.add_argument("--parts", default="1,2,3,4,5,6", help="which parts to run (default: all)")
    parser.add_argument("--record-mb", type=int, default=100, help="MB through the pane, part 5")
    args = parser.parse_args(argv)
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--uv" in shown:
        del shown[shown.index("--uv") : shown.index("--uv") + 2]
    args.argv = shown
    if args.quick:
        args.rounds, args.ssh_rounds, args.warmup, args.logins = 2, 2, 1, 5
        args.sizes, args.check_rounds, args.record_mb = "10,100", 1, 5
    sizes = tuple(int(s) for s in args.sizes.split(","))
    parts = set(args.parts.split(","))
    if os.geteuid() != 0:
        parser.error("run as root (it creates a throwaway account and starts sshd)")

    started = datetime.now(UTC)
    clock = time.monotonic()
    report = Report()
    report.data["machine"] = machine()

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="gk-bench-", dir="/tmp"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        work.chmod(0o755)
        log(f"work directory {work}, journald namespace gkbench{os.getpid()}")
        if args.venv is not None:
            venv = args.venv
        else:
            log("building the production-like venv (uv sync --no-dev --no-editable)")
            venv = build_venv(work, args.uv or shutil.which("uv") or "uv")
        guest = create_guest(work, stack)
        journal = start_journald(stack)
        primary, secondary = pty.openpty()
        stack.callback(os.close, primary)
        stack.callback(os.close, secondary)
        ctx = Context(work, venv, guest, journal, secondary, os.ttyname(secondary), args.warmup)
        stack.callback(remove_caches, ctx.cached_paths)

        ctx.policy_small = work / "policy.toml"
        ctx.policy_small.write_text(policy_text(guest.name, journal.socket, "gkbench", 10))
        ctx.policy_nocache = work / "policy-nocache.toml"
        shutil.copy(ctx.policy_small, ctx.policy_nocache)
        conc = work / "policy-concurrent.toml"
        conc.write_text(policy_text(guest.name, journal.socket, "gkbench-conc", 10))
        for path in (ctx.policy_small, ctx.policy_nocache, conc):
            path.chmod(0o644)
        ctx.cached_paths += [str(ctx.policy_small), str(ctx.policy_nocache), str(conc)]
        for path in (ctx.policy_small, conc):
            run([str(ctx.ctl), "check", str(path)])  # writes the validated-policy cache

        authprogs: Path | None = None
        if args.no_authprogs:
            report.notes.append("authprogs baseline skipped (--no-authprogs)")
        else:
            log(f"installing {AUTHPROGS} into a throwaway venv")
            authprogs, why = install_authprogs(work)
            if authprogs is None:
                report.notes.append(why)

        if "1" in parts:
            log("part 1: start->exec")
            part_start_exec(report, ctx, args.rounds, authprogs)
        if "5" in parts:
            log(f"part 5: pane output with recording on vs off ({args.record_mb} MB)")
            part_recording(report, ctx, min(args.rounds, 5), args.record_mb)
        if "6" in parts:
            log("part 6: the authorized-keys command")
            part_authorized_keys(report, ctx, args.rounds)
        if "3" in parts:
            log("part 3: policy size")
            part_policy_size(report, ctx, args.rounds, (sizes[0], sizes[1]), args.check_rounds)
        if "2" in parts or "4" in parts:
            log("starting sshd")
            sshd = start_sshd(
                work,
                guest,
                {
                    "gatekeeper": f"{ctx.gatekeeper} --policy {ctx.policy_small}",
                    "true": "/bin/true",
                    "structlog": f"{ctx.python} -I -c 'import structlog'",
                    "concurrent": f"{ctx.gatekeeper} --policy {conc}",
                },
                stack,
            )
            if "2" in parts:
                log("part 2: end to end over ssh")
                part_end_to_end(report, ctx, sshd, args.ssh_rounds)
            if "4" in parts:
                log(f"part 4: {args.logins} simultaneous logins")
                part_concurrency(report, ctx, sshd, args.logins)

    report.rows.sort(key=lambda row: row[0][:3])
    text = render(report, args, started, time.monotonic() - clock)
    sys.stdout.write(text)
    if args.json is not None:
        args.json.write_text(json.dumps({"table": text, **report.data}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
