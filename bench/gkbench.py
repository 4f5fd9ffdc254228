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
session recorder on vs off; (6) audit review at scale: records generated
through a private journald namespace's native socket, then ``audit --user X
--json`` beside ``journalctl GATEKEEPER_USER=X -o json``, ``audit --json``
beside ``journalctl -o json | jq -c .MESSAGE`` and the peak RSS of ``audit
--sessions``, per journal size (``--scale-sizes``); (7) the authorized-keys command (sshd, every
offered key) beside ``python3 -I -c pass``. Variants run alternately,
round by round, so a load change on the machine hits all of them alike; the table
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
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatekeeper.testing import accounts
from gatekeeper.testing import sshd as harness_sshd
from gatekeeper.testing.accounts import Account as Guest
from gatekeeper.testing.journal import Journal, journald
from gatekeeper.testing.poll import wait_until as wait_for
from gatekeeper.testing.procs import stop

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
SSHD = harness_sshd.SSHD
CACHE_DIR = "/var/cache/ssh-gatekeeper"
AUTHPROGS = "authprogs==0.7.5"

#: The targets of issue 8; reported, never asserted.
TARGETS = {
    "start_exec_vs_structlog": 1.30,
    "end_to_end_vs_true": 1.35,
    "policy_10k_vs_10": 1.25,
    "audit_user_vs_match": 1.5,
    "audit_full_vs_jq": 2.0,
    "sessions_rss_mb": 200,
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


def create_guest(work: Path, stack: contextlib.ExitStack) -> Guest:
    """The throwaway guest (root-owned home in the work directory), removed at the end."""
    name = f"gkbench-{secrets.token_hex(3)}"
    stack.callback(accounts.delete_group, name)  # useradd --user-group made it
    stack.callback(accounts.delete_account, name)
    guest = accounts.create_account(name, home=work / "home", replace=False)
    log(f"guest account {name}")
    return guest


def start_journald(
    stack: contextlib.ExitStack, prefix: str = "gkbench", conf: str | None = None
) -> Journal:
    """A private namespace ``PREFIX<pid>`` for the run (``conf``: its journald@.conf)."""
    namespace = f"{prefix}{os.getpid()}"
    if conf is not None:
        path = Path(f"/etc/systemd/journald@{namespace}.conf")
        path.write_text(conf)
        stack.callback(path.unlink, missing_ok=True)
    return stack.enter_context(journald(namespace))


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
        "[programs.contained]",
        'argv = ["/bin/true"]',
        "sandbox = true",
    ]
    for index in range(grants - 1):
        lines += ["[[grant]]", f'users = ["user{index}"]', 'program = "true"']
    lines += ["[[grant]]", f'users = ["{guest}"]', 'program = "true"']
    lines += ["[[grant]]", f'users = ["{guest}"]', 'program = "contained"']
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


def start_sshd(
    work: Path, guest: Guest, forced: dict[str, str], stack: contextlib.ExitStack
) -> Sshd:
    """One sshd, one port per ForceCommand; files under /run (StrictModes rejects /tmp)."""
    site = Path(tempfile.mkdtemp(prefix="gk-bench-", dir="/run"))
    stack.callback(shutil.rmtree, site, ignore_errors=True)
    site.chmod(0o755)
    log(f"sshd directory {site}")
    host_key = harness_sshd.keygen(site / "host_key")
    key = harness_sshd.keygen(work / "client_key")
    keys = site / "keys"
    keys.mkdir(mode=0o755)
    (keys / guest.name).write_text(Path(f"{key}.pub").read_text())
    (keys / guest.name).chmod(0o644)
    ports = dict(zip(forced, harness_sshd.free_ports(len(forced)), strict=True))
    lines = [
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
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
        # INFO: the harness reads "Server listening" from the log (a file, never a pipe
        # nobody drains); the variants all log alike, so the ratios are unaffected.
        "LogLevel INFO",
    ]
    # OpenSSH >= 9.8 would penalise 200 logins from one address.
    lines.append(harness_sshd.version_globals(host_key).rstrip())
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
    listener = harness_sshd.start(config, site / "sshd.log", ports=list(ports.values()))
    stack.callback(stop, listener.process)
    host_public = Path(f"{site / 'host_key'}.pub").read_text().strip()
    known_hosts = work / "known_hosts"
    known_hosts.write_text(
        "".join(f"[127.0.0.1]:{port} {host_public}\n" for port in ports.values())
    )
    return Sshd(ports, key, known_hosts, listener.process)


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
            "gatekeeper contained (cached policy)",
            [str(ctx.gatekeeper), "--policy", str(ctx.policy_small)],
            {**gk_env, "SSH_ORIGINAL_COMMAND": "run contained"},
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
    contained = by["gatekeeper contained (cached policy)"]
    report.row(
        "(1) gatekeeper contained / uncontained",
        f"{median_ms(contained.wall) / median_ms(gk.wall):.2f}x",
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
    """(7) sshd's AuthorizedKeysCommand, once per offered key, beside ``python3 -I -c pass``."""
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
        report.notes.append(f"(7) the listed key was NOT answered: {answered!r}")
    alternate(variants, rounds, ctx.warmup, None, ctx.tty_fd)
    by = {v.name: v for v in variants}
    floor = median_ms(by["python3 -I -c pass"].wall)
    for variant in variants:
        failed = failure_text(report, variant)
        report.row(
            f"(7) {variant.name}",
            f"{median_ms(variant.wall):.1f} ms (cpu {median_ms(variant.cpu):.1f} ms){failed}",
        )
    for name in ("authorized-keys (listed key)", "authorized-keys (unknown key)"):
        ratio = median_ms(by[name].wall) / floor
        report.row(
            f"(7) {name} / python3 -I -c pass",
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
            run([str(ctx.ctl), "check", "--cache-dir", CACHE_DIR, str(paths[size])])
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
    before = len(ctx.journal.records(identifier="gkbench-conc"))
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
        entries = ctx.journal.records(identifier="gkbench-conc")[before:]
        return entries if len(entries) >= logins - failures else None

    try:
        entries = wait_for(settled, 30, f"{logins} journal records")
    except RuntimeError:
        entries = ctx.journal.records(identifier="gkbench-conc")[before:]
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


# --------------------------------------------------------------------------- part 6: scale

#: Run by the venv's Python as a script, so it stands in for the launcher and its
#: records are trusted like real ones (audit --launcher names it): the project's
#: own writer (audit.journal_fields + journald.encode) over one connected
#: datagram socket, as fast as journald takes them (a full AF_UNIX datagram queue
#: blocks the sender: nothing is dropped). Visits follow one another, so one pid
#: serves them all; a quarter of the records are denials.
GENERATOR = r"""
import json, os, socket, sys
from gatekeeper.login import audit, journald
path, ident, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.connect(path)
pid = os.getpid()
for i in range(first, first + count):
    visit, step = divmod(i, 4)
    user = f"scale{visit % 50}"
    record = {"user": user, "uid": 0, "person": f"p{visit % 200}",
              "client_addr": f"10.{visit % 200}.{visit % 97}.{visit % 251}",
              "client_port": 40000 + visit % 20000, "pid": pid,
              "version": "bench", "timestamp": "2026-01-01T00:00:00Z"}
    if step == 0:
        record.update(event="connect", decision="allow", reason="granted", session="pair",
                      mode="read-only", connection_id=f"c{visit:015x}",
                      original_command="attach pair", original_command_bytes=11,
                      argv=["/usr/bin/tmux", "-N", "-S", "/run/gk/pair", "attach"])
    elif step == 1:
        record.update(event="join", decision="allow", session="pair", mode="read-only",
                      client_pid=pid, tty="/dev/pts/3",
                      connection_id=f"c{visit:015x}")
    elif step == 2:
        record.update(event="leave", decision="allow", session="pair", mode="read-only",
                      client_pid=pid, tty="/dev/pts/3", ended="detached",
                      duration_seconds=61.5)
    else:
        record.update(event="connect", decision="deny", reason="no_grant",
                      connection_id=f"d{visit:015x}", original_command="attach other",
                      original_command_bytes=12)
    if (mid := audit.message_id(record)) is not None:
        record["message_id"] = mid
    message = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
    sock.send(journald.encode(audit.journal_fields(record, ident, message)))
sock.send(journald.encode({"MESSAGE": str(first + count), "SYSLOG_IDENTIFIER": ident + "-done"}))
"""


def start_scale_journald(stack: contextlib.ExitStack) -> Journal:
    """A namespace without rate limiting, big enough for a million records."""
    conf = (
        "[Journal]\nStorage=persistent\nRateLimitIntervalSec=0\nRateLimitBurst=0\n"
        "SystemMaxUse=16G\nSystemKeepFree=2G\nSystemMaxFileSize=1G\n"
    )
    return start_journald(stack, "gkscale", conf)


def generate(ctx: Context, journal: Journal, ident: str, first: int, count: int) -> float:
    """Send ``count`` records; return the seconds until journald had them all."""
    clock = time.monotonic()
    script = ctx.work / "gkscale-generator"
    script.write_text(GENERATOR)
    run([str(ctx.python), "-I", str(script), journal.socket, ident, str(first), str(count)])
    want = str(first + count)

    def done() -> bool:
        out = subprocess.run(
            ["journalctl", f"--namespace={journal.namespace}", "-o", "cat", "--no-pager",
             "-n", "1", f"SYSLOG_IDENTIFIER={ident}-done"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        return bool(out) and out[-1] == want

    wait_for(done, 600, f"{count} generated records")
    return time.monotonic() - clock


def _sample_hwm(pid: int, peak: list[int]) -> None:
    """Keep the last ``VmHWM`` (the process's own peak RSS, KiB) until it exits."""
    path = Path(f"/proc/{pid}/status")
    while True:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return
        found = [int(x.split()[1]) for x in lines if x.startswith("VmHWM:")]
        if not found:  # a zombie has no memory map left: the last sample stands
            return
        peak[0] = max(peak[0], found[0])
        time.sleep(0.05)  # sampling interval, not synchronisation


def timed_pipeline(argvs: Sequence[Sequence[str]]) -> tuple[float, int, int, int]:
    """Run ``a | b | ... | wc -l``; return seconds, output lines and two peaks (KiB).

    The peaks are of the first process: its own ``VmHWM`` (sampled) and
    wait4's ``ru_maxrss``, the largest of it and the children it waited for
    (for ``audit``: its journalctl, whose mapped journal files count).
    """
    clock = time.monotonic()
    processes: list[subprocess.Popen[bytes]] = []
    stdin: Any = subprocess.DEVNULL
    for argv in [*argvs, ["wc", "-l"]]:
        process = subprocess.Popen(
            list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        if processes and processes[-1].stdout is not None:
            processes[-1].stdout.close()  # the next process holds it now
        processes.append(process)
        stdin = process.stdout
    own = [0]
    sampler = threading.Thread(target=_sample_hwm, args=(processes[0].pid, own), daemon=True)
    sampler.start()
    out = processes[-1].communicate()[0]
    sampler.join()
    _, status, usage = os.wait4(processes[0].pid, 0)
    for process in processes[1:-1]:
        process.wait()
    seconds = time.monotonic() - clock
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argvs[0])} failed ({status})")
    return seconds, int(out.split()[0]), own[0], usage.ru_maxrss


def part_scale(report: Report, ctx: Context, sizes: Sequence[int], rounds: int) -> None:
    """(6) audit at scale: journald's index vs the reader, side by side per size."""
    with contextlib.ExitStack() as stack:
        journal = start_scale_journald(stack)
        ident = "gkscale"
        ns = f"--namespace={journal.namespace}"
        audit = [str(ctx.ctl), "audit", ns, "--identifier", ident]
        audit += ["--policy", str(ctx.policy_small)]
        audit += ["--launcher", str(ctx.work / "gkscale-generator")]
        have = 0
        scaling: list[dict[str, Any]] = []
        for size in sizes:
            seconds = generate(ctx, journal, ident, have, size - have)
            log(f"part 6: {size} records in the namespace ({size - have} sent in {seconds:.1f} s)")
            have = size
            variants: dict[str, list[Sequence[str]]] = {
                "audit --user": [[*audit, "--user", "scale7", "--json"]],
                "journalctl match": [["journalctl", ns, "GATEKEEPER_USER=scale7", "-o", "json"]],
                "audit --json": [[*audit, "--json"]],
                "journalctl | jq": [
                    ["journalctl", ns, f"SYSLOG_IDENTIFIER={ident}", "-o", "json"],
                    ["jq", "-c", ".MESSAGE"],
                ],
                "audit --sessions": [[*audit, "--sessions", "--json"]],
            }
            samples: dict[str, list[float]] = {name: [] for name in variants}
            lines: dict[str, int] = {}
            own = 0
            rss = {"audit --sessions": 0, "journalctl | jq": 0}
            for _ in range(rounds):
                for name, argvs in variants.items():
                    took, count, hwm, peak = timed_pipeline(argvs)
                    samples[name].append(took)
                    lines[name] = count
                    if name in rss:
                        rss[name] = max(rss[name], peak)
                    if name == "audit --sessions":
                        own = max(own, hwm)
            med = {name: statistics.median(values) for name, values in samples.items()}
            user_ratio = med["audit --user"] / med["journalctl match"]
            full_ratio = med["audit --json"] / med["journalctl | jq"]
            label = f"(6) {size:,} records"
            report.row(
                f"{label}: audit --user X --json / journalctl GATEKEEPER_USER=X",
                f"{med['audit --user']:.2f} s / {med['journalctl match']:.2f} s = "
                f"{user_ratio:.2f}x ({lines['audit --user']} records)",
                verdict(user_ratio, TARGETS["audit_user_vs_match"]),
            )
            report.row(
                f"{label}: audit --json / journalctl -o json | jq -c .MESSAGE",
                f"{med['audit --json']:.2f} s / {med['journalctl | jq']:.2f} s = "
                f"{full_ratio:.2f}x ({lines['audit --json']} / {lines['journalctl | jq']})",
                verdict(full_ratio, TARGETS["audit_full_vs_jq"]),
            )
            peak_mb = own / 1024
            report.row(
                f"{label}: audit --sessions peak RSS (the reader's own VmHWM)",
                f"{peak_mb:.0f} MB, {med['audit --sessions']:.2f} s, "
                f"{lines['audit --sessions']} visits; with its journalctl "
                f"{rss['audit --sessions'] / 1024:.0f} MB (journalctl -o json alone "
                f"{rss['journalctl | jq'] / 1024:.0f} MB: mapped journal files)",
                f"<= {TARGETS['sessions_rss_mb']:.0f} MB: "
                + ("met" if peak_mb <= TARGETS["sessions_rss_mb"] else "NOT met"),
            )
            scaling.append(
                {"size": size, "median_s": med, "reader_hwm_kib": own, "tree_rss_kib": rss,
                 "lines": lines}
            )  # fmt: skip
        report.data["scale"] = scaling


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
    parser.add_argument(
        "--parts", default="1,2,3,4,5,6,7", help="which parts to run (default: all)"
    )
    parser.add_argument("--record-mb", type=int, default=100, help="MB through the pane, part 5")
    parser.add_argument(
        "--scale-sizes",
        default="10000,100000",
        help="part 6: journal sizes, cumulative (e.g. 10000,100000,1000000; 1M takes minutes)",
    )
    parser.add_argument("--scale-rounds", type=int, default=3, help="alternating rounds, part 6")
    args = parser.parse_args(argv)
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--uv" in shown:
        del shown[shown.index("--uv") : shown.index("--uv") + 2]
    args.argv = shown
    if args.quick:
        args.rounds, args.ssh_rounds, args.warmup, args.logins = 2, 2, 1, 5
        args.sizes, args.check_rounds, args.record_mb = "10,100", 1, 5
        args.scale_sizes, args.scale_rounds = "1000", 1
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
            # writes the validated-policy cache (explicitly: not the default policy)
            run([str(ctx.ctl), "check", "--cache-dir", CACHE_DIR, str(path)])

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
        if "7" in parts:
            log("part 7: the authorized-keys command")
            part_authorized_keys(report, ctx, args.rounds)
        if "3" in parts:
            log("part 3: policy size")
            part_policy_size(report, ctx, args.rounds, (sizes[0], sizes[1]), args.check_rounds)
        if "6" in parts:
            scale = [int(n) for n in args.scale_sizes.split(",")]
            log(f"part 6: audit at scale, {', '.join(f'{n:,}' for n in scale)} records")
            part_scale(report, ctx, scale, args.scale_rounds)
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
