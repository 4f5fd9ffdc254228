"""``gatekeeperctl doctor``: check the live system around the gatekeeper.

``check`` validates the policy file; ``doctor`` checks what the policy cannot
see, as root, on the running machine (SECURITY.md §1-4):

* for every guest account, the *effective* sshd configuration
  (``sshd -T -C user=U,host=...,addr=...``): ForceCommand is the gatekeeper by
  absolute path, forwarding of every kind is off, no user rc, a tty allowed,
  no client environment accepted - whatever earlier Match block or drop-in
  the file holds (the first value obtained wins, §1.6);
* the login shell (``sh -c`` must read no user file: dash, not bash, not
  nologin, §1.3), a root-owned home with no guest-writable dotfiles (§1.4-1.5,
  also the PAM ``user_readenv`` risk) and a root-owned ``authorized_keys``;
* the policy file's modes, each session's socket directory, the tmux version
  (read-only is only keys-deep below 3.7, §3.17) and journald's socket.

One line per check, each failure and warning with a fix; exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import os
import pwd
import socket
import stat
import subprocess
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from gatekeeper.cli.common import add_policy_option, print_json
from gatekeeper.deploy import guestset
from gatekeeper.deploy.sshdconfig import ACCEPT_NOTHING, DEFAULT_GATEKEEPER
from gatekeeper.host.system import in_group, tmux_version
from gatekeeper.login import fsafety
from gatekeeper.login.textsafe import escape
from gatekeeper.policy import cache
from gatekeeper.policy.loader import PolicyError, load, parse
from gatekeeper.policy.model import AUTHORIZED_KEYS_COMMAND, DEFAULT_PATH, READ_ONLY, Policy

Status = Literal["ok", "warn", "fail"]

DEFAULT_SSHD: Final = "/usr/sbin/sshd"
PAM_SSHD: Final = "/etc/pam.d/sshd"
#: ``sh -c`` implementations that read no file the user controls.
QUIET_SHELLS: Final = guestset.QUIET_SHELLS
#: Files and directories in a guest's home that sshd, PAM, a shell or a program reads.
_SUBDIRS: Final = (".ssh", ".config", ".local")

#: (sshd -T keyword, required value, why, severity when it differs)
SSHD_EXPECTED: Final[tuple[tuple[str, str, str, Status], ...]] = (
    ("disableforwarding", "yes", "ForceCommand does not cover forwarding (§1.1)", "fail"),
    ("allowtcpforwarding", "no", "-L/-R/-D/-W bypass the gatekeeper (§1.1)", "fail"),
    (
        "allowstreamlocalforwarding",
        "no",
        "a forwarded tmux socket makes a read-only guest the host (§1.2)",
        "fail",
    ),
    ("allowagentforwarding", "no", "agent forwarding leaks into the session (§1.1)", "fail"),
    ("x11forwarding", "no", "X11 forwarding bypasses the gatekeeper (§1.1)", "fail"),
    ("permittunnel", "no", "tun devices are not covered by DisableForwarding (§1.1)", "fail"),
    ("permituserrc", "no", "~/.ssh/rc runs for key command= logins (corpus ENV-05)", "fail"),
    ("permituserenvironment", "no", "~/.ssh/environment reaches the login shell", "fail"),
    ("permittty", "yes", "attach and run need a terminal", "fail"),
    ("exposeauthinfo", "yes", "without SSH_USER_AUTH no person is recorded", "warn"),
    ("maxsessions", "1", "one session per connection keeps one record per login", "warn"),
    ("authenticationmethods", "publickey", "guests are known by their keys", "warn"),
)


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, for whom, the outcome and how to fix it."""

    status: Status
    check: str
    subject: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Options:
    """What to check against."""

    policy: str = DEFAULT_PATH
    sshd: str = DEFAULT_SSHD
    sshd_config: str | None = None
    addr: str = "127.0.0.1"
    host: str = "localhost"
    gatekeeper: str = DEFAULT_GATEKEEPER
    pam_sshd: str = PAM_SSHD


# --------------------------------------------------------------------------- guests


def check_fix(policy: str) -> str:
    """The ``check`` command that refreshes the validated-policy cache for ``policy``.

    For a policy outside /etc a plain ``check PATH`` only validates (it is a
    config-management validator), so the fix names the cache directory.
    """
    if os.path.realpath(policy) == os.path.realpath(DEFAULT_PATH):
        return f"gatekeeperctl check {policy}"
    return f"gatekeeperctl check --cache-dir {cache.DEFAULT_DIR} {policy}"


def guest_accounts(policy: Policy) -> tuple[list[pwd.struct_passwd], list[Check]]:
    """Every existing guest account a grant reaches, directly or through a group.

    A session owner or any other non-guest a grant reaches is a failure with
    no fix to that account: doctor never proposes turning the host into a
    guest (SECURITY.md §30, :mod:`gatekeeper.deploy.guestset`).
    """
    classified = guestset.classify(policy)
    found = [
        Check("warn", "account", group, "group does not exist", f"groupadd {group}")
        for group in classified.missing_groups
    ]
    # Named in users (neither root nor an owner): the shell/home checks below say
    # how to make it a guest. Everything else refused gets no account fix at all.
    meant = [item.name for item in classified.refused if item.misshapen_guest]
    found += [
        Check(
            "fail",
            "account",
            item.name,
            escape(guestset.refusal_text(item)),
            f"edit the policy ({escape(item.where)}), then gatekeeperctl sshd-config",
        )
        for item in classified.refused
        if not item.misshapen_guest
    ]
    found += [
        Check(
            "warn",
            "account",
            name,
            "account does not exist (its grants are unused)",
            f"gatekeeperctl guest add {name}",
        )
        for name in classified.missing
    ]
    names = [n for n in classified.guests if n not in classified.missing] + meant
    accounts = [pwd.getpwnam(n) for n in names]
    return accounts, found


# --------------------------------------------------------------------------- sshd


def effective_sshd(options: Options, user: str) -> dict[str, list[str]] | str:
    """``sshd -T -C`` for ``user`` as keyword -> values, or the error text."""
    argv = [options.sshd, "-T"]
    if options.sshd_config:
        argv += ["-f", options.sshd_config]
    argv += ["-C", f"user={user},host={options.host},addr={options.addr}"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if result.returncode != 0:
        return (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        keyword, _, value = line.partition(" ")
        values.setdefault(keyword.lower(), []).append(value)
    return values


def _force_command(options: Options, user: str, value: str) -> Check:
    words = value.split(" ")
    want = [options.gatekeeper]
    if os.path.abspath(options.policy) != DEFAULT_PATH:
        want += ["--policy", os.path.abspath(options.policy)]
    fix = "install the output of `gatekeeperctl sshd-config` in /etc/ssh/sshd_config.d/"
    if value == "none":
        return Check("fail", "sshd.forcecommand", user, "no ForceCommand: a normal shell", fix)
    if not words[0].startswith("/"):
        return Check(
            "fail", "sshd.forcecommand", user, f"{escape(value)!r} is not an absolute path", fix
        )
    if words != want:
        return Check(
            "fail",
            "sshd.forcecommand",
            user,
            f"ForceCommand is {escape(value)!r}, expected {' '.join(want)!r}",
            fix,
        )
    return Check("ok", "sshd.forcecommand", user, f"ForceCommand {value}")


def sshd_checks(options: Options, user: str, *, keys_command: bool = False) -> list[Check]:
    """The effective sshd settings for one guest (``keys_command``: [identity] source)."""
    values = effective_sshd(options, user)
    if isinstance(values, str):
        return [
            Check(
                "fail",
                "sshd",
                user,
                f"sshd -T failed: {escape(values)}",
                "fix the sshd configuration until `sshd -t` passes",
            )
        ]
    found = [_force_command(options, user, (values.get("forcecommand") or ["none"])[0])]
    fix = "use the Match block from `gatekeeperctl sshd-config`, before any other Match"
    for keyword, want_default, why_default, severity in SSHD_EXPECTED:
        want, why = want_default, why_default
        if keyword == "permituserenvironment" and keys_command:
            want = "gatekeeper_person"
            why = "only GATEKEEPER_PERSON, from the policy's key line, may pass (§29)"
        got = " ".join(values.get(keyword, ["(unset)"]))
        if got.lower() == want:
            found.append(Check("ok", f"sshd.{keyword}", user, f"{keyword} {got}"))
        else:
            found.append(
                Check(severity, f"sshd.{keyword}", user, f"{keyword} is {got}: {why}", fix)
            )
    accepted = [v for v in values.get("acceptenv", []) if v != ACCEPT_NOTHING]
    if accepted:
        found.append(
            Check(
                "fail",
                "sshd.acceptenv",
                user,
                f"client environment accepted: {' '.join(accepted)} (arrives verbatim, "
                "corpus ENV-01)",
                f"AcceptEnv {ACCEPT_NOTHING} inside the guest's Match block",
            )
        )
    else:
        found.append(Check("ok", "sshd.acceptenv", user, "no client environment accepted"))
    if keys_command:
        found += keys_command_sshd_checks(user, values)
    else:
        found += authorized_keys_checks(user, values.get("authorizedkeysfile", []))
    found.append(pam_check(options, user, (values.get("usepam") or ["no"])[0] == "yes"))
    return found


def keys_command_sshd_checks(user: str, values: dict[str, list[str]]) -> list[Check]:
    """``[identity] source = "authorized-keys-command"``: sshd asks the policy, nothing else."""
    fix = "use the Match block from `gatekeeperctl sshd-config` (it adds the three lines)"
    found: list[Check] = []
    files = values.get("authorizedkeysfile", [])
    if files != ["none"]:
        found.append(
            Check(
                "fail",
                "sshd.authorizedkeysfile",
                user,
                f"AuthorizedKeysFile is {escape(' '.join(files))}: keys outside the policy "
                "log in without a person",
                fix,
            )
        )
    else:
        found.append(Check("ok", "sshd.authorizedkeysfile", user, "AuthorizedKeysFile none"))
    command = (values.get("authorizedkeyscommand") or ["none"])[0]
    words = command.split(" ")
    if words[0] == "none" or words[-4:] != ["%u", "%t", "%k", "%f"]:
        found.append(
            Check(
                "fail",
                "sshd.authorizedkeyscommand",
                user,
                f"AuthorizedKeysCommand is {escape(command)}: the policy's keys are not asked",
                fix,
            )
        )
        return found
    launcher = launcher_check(words[0])
    found.append(
        Check(
            launcher.status,
            "sshd.authorizedkeyscommand",
            user,
            f"{escape(command)}: {launcher.message}",
            launcher.fix,
        )
    )
    runner = (values.get("authorizedkeyscommanduser") or ["none"])[0]
    try:
        pwd.getpwnam(runner)
        found.append(Check("ok", "sshd.authorizedkeyscommanduser", user, runner))
    except KeyError:
        found.append(
            Check(
                "fail",
                "sshd.authorizedkeyscommanduser",
                user,
                f"{escape(runner)} is no account: sshd cannot run the command",
                "AuthorizedKeysCommandUser nobody",
            )
        )
    return found


def _random_key() -> tuple[str, str]:
    """A well-formed ssh-ed25519 public key nobody holds (for the unknown-key probe)."""
    import base64  # noqa: PLC0415

    name = b"ssh-ed25519"
    blob = len(name).to_bytes(4, "big") + name + (32).to_bytes(4, "big") + os.urandom(32)
    return "ssh-ed25519", base64.b64encode(blob).decode("ascii")


def _known_key(path: str) -> tuple[str, str, str] | None:
    """(person, type, base64) of the first full key line in the policy, or None."""
    try:
        data, _ = parse(fsafety.read_trusted(path), path)
    except (PolicyError, OSError):
        return None
    for name, person in data.people.items():
        for entry in person.keys:
            if not entry.startswith("SHA256:"):
                key_type, key_b64 = entry.split(" ")[:2]
                return name, key_type, key_b64
    return None


def keys_command_run_checks(options: Options, guest: str) -> list[Check]:
    """Run the AuthorizedKeysCommand as sshd would: a listed key answered, a random one not."""
    values = effective_sshd(options, guest)
    if isinstance(values, str):
        return []
    command = (values.get("authorizedkeyscommand") or ["none"])[0].split(" ")
    runner = (values.get("authorizedkeyscommanduser") or ["nobody"])[0]
    if command[0] == "none" or command[-4:] != ["%u", "%t", "%k", "%f"]:
        return []
    try:
        entry = pwd.getpwnam(runner)
    except KeyError:
        return []
    from gatekeeper.login import authkeys  # noqa: PLC0415

    def ask(key_type: str, key_b64: str) -> subprocess.CompletedProcess[str]:
        fpr = authkeys.fingerprint(key_type, key_b64) or ""
        argv = [*command[:-4], guest, key_type, key_b64, fpr]
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=30, env={},
            user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/",
        )  # fmt: skip

    found: list[Check] = []
    unknown = ask(*_random_key())
    if unknown.returncode == 0 and not unknown.stdout:
        found.append(Check("ok", "keys_command.unknown", guest, "an unknown key is refused"))
    else:
        found.append(
            Check(
                "fail",
                "keys_command.unknown",
                guest,
                f"an unknown key got exit {unknown.returncode} and "
                f"{escape(unknown.stdout[:200])!r}",
            )
        )
    known = _known_key(options.policy)
    if known is None:
        found.append(
            Check(
                "warn",
                "keys_command.known",
                guest,
                "the policy lists fingerprints only: no key to test the command with",
                "list full public key lines in people.NAME.keys",
            )
        )
        return found
    person, key_type, key_b64 = known
    answer = ask(key_type, key_b64)
    if f'environment="GATEKEEPER_PERSON={person}"' in answer.stdout:
        found.append(Check("ok", "keys_command.known", guest, f"{person}'s key is answered"))
    else:
        found.append(
            Check(
                "warn" if answer.returncode == 0 else "fail",
                "keys_command.known",
                guest,
                f"{person}'s key got no line (exit {answer.returncode}): the key index is "
                f"missing or stale, or {person} has no grant for {guest}",
                check_fix(options.policy),
            )
        )
    return found


def expand_keys_path(pattern: str, entry: pwd.struct_passwd) -> str:
    """Expand sshd's ``%%``, ``%h``, ``%u``, ``%U`` tokens; relative paths are under the home."""
    out = ""
    tokens = {"%": "%", "h": entry.pw_dir, "u": entry.pw_name, "U": str(entry.pw_uid)}
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "%" and index + 1 < len(pattern):
            out += tokens.get(pattern[index + 1], "")
            index += 2
            continue
        out += char
        index += 1
    return out if out.startswith("/") else os.path.join(entry.pw_dir, out)


def _guest_can_change(path: str, entry: pwd.struct_passwd) -> str | None:
    """Why the guest can replace ``path`` (itself or a directory above it), or None."""
    gids = os.getgrouplist(entry.pw_name, entry.pw_gid)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if st.st_uid == entry.pw_uid:
        return f"{path} is owned by {entry.pw_name}"
    if fsafety.writable_by(st, entry.pw_uid, gids) and not stat.S_ISLNK(st.st_mode):
        return f"{path} is writable by {entry.pw_name}"
    parent = os.path.dirname(path)
    while parent:
        st = os.stat(parent)
        if st.st_uid == entry.pw_uid or (
            fsafety.writable_by(st, entry.pw_uid, gids) and not st.st_mode & stat.S_ISVTX
        ):
            return f"directory {parent} is writable by {entry.pw_name}"
        if parent == "/":
            break
        parent = os.path.dirname(parent)
    return None


def authorized_keys_checks(user: str, patterns: list[str]) -> list[Check]:
    """Every ``AuthorizedKeysFile`` of the guest must be root's (corpus ENV-16)."""
    entry = pwd.getpwnam(user)
    files = [expand_keys_path(p, entry) for line in patterns for p in line.split(" ") if p]
    existing = [f for f in files if os.path.lexists(f)]
    if not existing:
        return [
            Check(
                "warn",
                "authorized_keys",
                user,
                "no AuthorizedKeysFile exists: the guest cannot log in with a key",
                "AuthorizedKeysFile /etc/ssh/authorized_keys/%u (root-owned)",
            )
        ]
    problems = [why for f in existing if (why := _guest_can_change(f, entry))]
    if problems:
        return [
            Check(
                "fail",
                "authorized_keys",
                user,
                "; ".join(problems) + ": the guest can add keys or strip options",
                "AuthorizedKeysFile /etc/ssh/authorized_keys/%u, owned by root, mode 0644",
            )
        ]
    return [Check("ok", "authorized_keys", user, f"{', '.join(existing)} owned by root")]


def _pam_user_readenv(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return False
    for line in lines:
        words = line.split("#", 1)[0].split()
        if any(w.endswith("pam_env.so") for w in words) and "user_readenv=1" in words:
            return True
    return False


def pam_check(options: Options, user: str, use_pam: bool) -> Check:
    """Debian's ``pam_env.so user_readenv=1`` reads ``~/.pam_environment`` (§1.4)."""
    if not use_pam or not _pam_user_readenv(options.pam_sshd):
        return Check("ok", "pam.user_readenv", user, "PAM reads no environment from the home")
    entry = pwd.getpwnam(user)
    why = _guest_can_change(os.path.join(entry.pw_dir, ".pam_environment"), entry)
    if why is None and not os.path.lexists(os.path.join(entry.pw_dir, ".pam_environment")):
        why = _guest_can_change(entry.pw_dir, entry)
    fix = f"remove user_readenv=1 from {options.pam_sshd}, and keep the home root-owned"
    if why:
        return Check(
            "fail",
            "pam.user_readenv",
            user,
            f"{options.pam_sshd} has user_readenv=1 and {why}: LD_PRELOAD injection",
            fix,
        )
    return Check(
        "warn",
        "pam.user_readenv",
        user,
        f"{options.pam_sshd} has user_readenv=1: safe only while the home stays root-owned",
        fix,
    )


# --------------------------------------------------------------------------- account


def shell_check(entry: pwd.struct_passwd) -> Check:
    """The login shell: sshd runs ``<shell> -c <ForceCommand>``; it must read no user file."""
    shell = entry.pw_shell
    real = os.path.realpath(shell) if shell else ""
    fix = f"usermod -s /bin/sh {entry.pw_name}   (dash)"
    name = os.path.basename(real)
    if name in {"nologin", "false"} or not real:
        return Check(
            "fail",
            "login_shell",
            entry.pw_name,
            f"{shell or '(empty)'} cannot run the ForceCommand: the gatekeeper never starts",
            fix,
        )
    if not os.access(real, os.X_OK):
        return Check("fail", "login_shell", entry.pw_name, f"{shell} is not executable", fix)
    if name not in QUIET_SHELLS:
        return Check(
            "fail",
            "login_shell",
            entry.pw_name,
            f"{shell} ({real}) reads user startup files before the gatekeeper runs "
            "(bash: ~/.bashrc for sshd's -c, corpus ENV-04)",
            fix,
        )
    return Check("ok", "login_shell", entry.pw_name, f"{shell} ({real}) reads no user files")


def home_check(entry: pwd.struct_passwd) -> Check:
    """The home and everything sshd, PAM, shells and programs read there: root's (§1.4-1.5)."""
    user, home = entry.pw_name, entry.pw_dir
    fix = f"chown -R root: {home} && chmod -R go-w {home}"
    try:
        st = os.stat(home)
    except OSError:
        return Check("warn", "home", user, f"{home} does not exist (sshd falls back to /)")
    gids = os.getgrouplist(user, entry.pw_gid)
    if st.st_uid != 0:
        return Check("fail", "home", user, f"{home} is owned by uid {st.st_uid}, not root", fix)
    if fsafety.writable_by(st, entry.pw_uid, gids):
        return Check("fail", "home", user, f"{home} is writable by {user}", fix)
    bad: list[str] = []
    paths = [os.path.join(home, name) for name in sorted(os.listdir(home))]
    for sub in _SUBDIRS:
        directory = os.path.join(home, sub)
        if os.path.isdir(directory) and not os.path.islink(directory):
            paths += [os.path.join(directory, name) for name in sorted(os.listdir(directory))]
    for path in paths:
        lst = os.lstat(path)
        if lst.st_uid == entry.pw_uid or (
            not stat.S_ISLNK(lst.st_mode) and fsafety.writable_by(lst, entry.pw_uid, gids)
        ):
            bad.append(escape(path))
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        return Check("fail", "home", user, f"{user} can write {shown}", fix)
    return Check("ok", "home", user, f"{home} and its dotfiles are root's")


# --------------------------------------------------------------------------- launcher


def _root_only(path: str) -> str | None:
    """Why ``path`` or a directory above it could be changed by someone but root, or None."""
    current = path
    while True:
        st = os.stat(current)
        if st.st_uid != 0:
            return f"{current} is owned by uid {st.st_uid}"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{current} is writable by group or others"
        if current == "/":
            return None
        current = os.path.dirname(current)


def launcher_check(path: str) -> Check:
    """The ForceCommand must be the isolated launcher (``#!PYTHON -I``, SECURITY.md §13)."""
    fix = "python3 -I -m gatekeeper.launcher PYTHON > LAUNCHER (root-owned, 0755)"
    try:
        with open(path, "rb") as handle:
            first = handle.readline(512)
    except OSError as error:
        return Check("fail", "launcher", path, f"cannot read it: {error.strerror}", fix)
    if not first.startswith(b"#!"):
        return Check("fail", "launcher", path, "not a script starting with #!", fix)
    words = first[2:].decode("ascii", errors="replace").split()
    if not words or "-I" not in words[1:]:
        return Check(
            "fail",
            "launcher",
            path,
            f"{escape(first.decode('ascii', errors='replace').strip())!r} does not start "
            "Python isolated (-I): a .pth, PYTHONPATH or PYTHONINSPECT can run code",
            fix,
        )
    for candidate in (os.path.realpath(path), os.path.realpath(words[0]), path, words[0]):
        try:
            why = _root_only(candidate)
        except OSError as error:
            return Check("fail", "launcher", path, f"{candidate}: {error.strerror}", fix)
        if why:
            return Check("fail", "launcher", path, why, "chown root: and chmod go-w on it")
    return Check("ok", "launcher", path, f"isolated ({' '.join(words)}), root-owned")


# --------------------------------------------------------------------------- policy & system


def session_checks(policy: Policy, accounts: list[pwd.struct_passwd]) -> list[Check]:
    """Each session's socket as each guest granted it would find it (§3.20)."""
    found: list[Check] = []
    by_name = {a.pw_name: a for a in accounts}
    for name, session in sorted(policy.sessions.items()):
        try:
            owner = pwd.getpwnam(session.owner)
        except KeyError:
            found.append(
                Check("fail", "session", name, f"owner {session.owner} does not exist", "useradd")
            )
            continue
        guests: set[str] = set()
        for grant in policy.grants:
            if grant.session == name:
                guests |= set(grant.users)
                for group in grant.groups:
                    guests |= {a.pw_name for a in accounts if in_group(a.pw_name, group)}
        if not guests & set(by_name):
            found.append(Check("warn", "session", name, "no existing guest account is granted it"))
            continue
        problems: list[str] = []
        missing = False
        for guest in sorted(guests & set(by_name)):
            entry = by_name[guest]
            gids = os.getgrouplist(guest, entry.pw_gid)
            problem = fsafety.check_socket(session.socket, owner.pw_uid, entry.pw_uid, gids)
            if problem is None:
                continue
            if problem[0] == "socket_missing":
                missing = True
            else:
                problems.append(f"{guest}: {problem[1]}")
        if problems:
            found.append(
                Check(
                    "fail",
                    "session",
                    name,
                    "; ".join(problems),
                    f"a directory owned by {session.owner} (0750) or sticky (1770); "
                    f"`gatekeeperctl share {name}` sets it up",
                )
            )
        elif missing:
            found.append(
                Check(
                    "warn",
                    "session",
                    name,
                    f"{session.socket} does not exist: the session is not shared right now",
                    f"as {session.owner}: gatekeeperctl share {name}",
                )
            )
        else:
            found.append(Check("ok", "session", name, f"{session.socket} is {session.owner}'s"))
    return found


def tmux_check(policy: Policy) -> Check:
    """The tmux version: 3.3 or newer is needed; read-only below 3.7 filters keys only (§3.17)."""
    version = tmux_version(policy.tmux_binary)
    if isinstance(version, str):
        return Check(
            "fail", "tmux", policy.tmux_binary, escape(version), "apt install tmux (3.3 or newer)"
        )
    shown = f"{version[0]}.{version[1]}"
    if version < (3, 3):
        return Check(
            "fail", "tmux", policy.tmux_binary, f"tmux {shown} is too old", "tmux 3.3 or newer"
        )
    read_only = any(g.session is not None and g.mode == READ_ONLY for g in policy.grants)
    if read_only and version < (3, 7):
        return Check(
            "warn",
            "tmux",
            policy.tmux_binary,
            f"tmux {shown}: read-only filters keys only; a second client on the socket "
            "could clear it (SECURITY.md §3.17) - keep forwarding off",
            "tmux 3.7 or newer",
        )
    return Check("ok", "tmux", policy.tmux_binary, f"tmux {shown}")


def containment_check(policy: Policy, abi: int | None = None, seccomp: bool | None = None) -> Check:
    """Landlock (ABI) and seccomp: needed by every ``sandbox = true`` program."""
    from gatekeeper.login import contain  # noqa: PLC0415 - ctypes only for this check

    abi = contain.landlock_abi() if abi is None else abi
    seccomp = contain.seccomp_available() if seccomp is None else seccomp
    contained = sorted(name for name, p in policy.programs.items() if p.sandbox)
    shown = f"Landlock ABI {abi}, seccomp {'yes' if seccomp else 'no'}"
    if abi >= contain.MIN_ABI and seccomp:
        return Check("ok", "containment", "kernel", f"{shown}: contained programs can run")
    fix = (
        "a kernel with CONFIG_SECURITY_LANDLOCK=y and CONFIG_SECCOMP_FILTER=y, and landlock "
        "in the LSM list (cat /sys/kernel/security/lsm; boot parameter lsm=...,landlock)"
    )
    if contained:
        return Check(
            "fail",
            "containment",
            "kernel",
            f"{shown}: contained programs ({', '.join(contained)}) are denied on this kernel",
            fix,
        )
    return Check("warn", "containment", "kernel", f"{shown}: programs cannot be contained", fix)


def journald_check(policy: Policy) -> Check:
    """The audit sink is reachable (else every login is denied with exit 75)."""
    audit = policy.audit
    if audit.sink == "file":
        directory = os.path.dirname(audit.file)
        if os.path.isdir(directory):
            return Check("ok", "audit", audit.file, f"{directory} exists")
        return Check("fail", "audit", audit.file, f"{directory} does not exist", "create it")
    fix = "start systemd-journald (or fix [audit] journal_socket)"
    try:
        st = os.stat(audit.journal_socket)
    except OSError as error:
        return Check("fail", "audit", audit.journal_socket, f"{error.strerror}", fix)
    if not stat.S_ISSOCK(st.st_mode):
        return Check("fail", "audit", audit.journal_socket, "not a socket", fix)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(audit.journal_socket)
        except OSError as error:
            return Check("fail", "audit", audit.journal_socket, f"{error.strerror}", fix)
    if not st.st_mode & stat.S_IWOTH:
        return Check(
            "fail",
            "audit",
            audit.journal_socket,
            "guests cannot write to the socket (not mode 0666)",
            fix,
        )
    return Check("ok", "audit", audit.journal_socket, "journald accepts connections")


def diagnose(options: Options) -> list[Check]:
    """Run every check; the order is the order of the report."""
    try:
        policy = load(options.policy)
    except PolicyError as error:
        return [
            Check(
                "fail",
                "policy",
                options.policy,
                escape(error.render()),
                check_fix(options.policy),
            )
        ]
    found = [Check("ok", "policy", options.policy, "root-owned, not writable by others, valid")]
    found.append(launcher_check(options.gatekeeper))
    accounts, problems = guest_accounts(policy)
    found += problems
    if not accounts:
        found.append(Check("warn", "account", "-", "no guest account exists yet"))
    vouched = policy.identity_source == AUTHORIZED_KEYS_COMMAND
    for entry in accounts:
        found += sshd_checks(options, entry.pw_name, keys_command=vouched)
        found.append(shell_check(entry))
        found.append(home_check(entry))
    if vouched and accounts:
        found += keys_command_run_checks(options, accounts[0].pw_name)
    found += session_checks(policy, accounts)
    found.append(tmux_check(policy))
    found.append(journald_check(policy))
    found.append(containment_check(policy))
    if os.geteuid() != 0:
        found.append(
            Check("warn", "doctor", "-", "not run as root: sshd -T and some checks may fail")
        )
    return found


def render(checks: list[Check]) -> str:
    """One line per check: ``STATUS check subject: message (fix: ...)``."""
    lines = []
    for c in checks:
        fix = f"  -> fix: {c.fix}" if c.fix and c.status != "ok" else ""
        lines.append(f"{c.status.upper():<4} {c.check:<28} {c.subject}: {c.message}{fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    lines.append(f"doctor: {failed} failed, {warned} warnings, {len(checks)} checks")
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace) -> int:
    options = Options(
        policy=os.path.abspath(args.policy) if args.policy else DEFAULT_PATH,
        sshd=args.sshd,
        sshd_config=args.sshd_config,
        addr=args.addr,
        gatekeeper=args.gatekeeper,
    )
    checks = diagnose(options)
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        print(render(checks), end="")
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    """Add ``doctor``."""
    parser = subparsers.add_parser(
        "doctor",
        help="check the live system (sshd, accounts, sockets, tmux, journald)",
        description="Check, as root, the sshd configuration each guest really gets, their "
        "login shell, home and authorized_keys, the session sockets, tmux and journald. "
        "Exit 1 if any check fails.",
    )
    add_policy_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument(
        "--sshd-config",
        "-f",
        metavar="FILE",
        default=None,
        help="sshd configuration to evaluate (sshd -f; default: sshd's own)",
    )
    parser.add_argument("--sshd", metavar="PATH", default=DEFAULT_SSHD, help="sshd binary")
    parser.add_argument(
        "--addr", default="127.0.0.1", help="client address for sshd -T -C (default 127.0.0.1)"
    )
    parser.add_argument(
        "--gatekeeper",
        metavar="PATH",
        default=DEFAULT_GATEKEEPER,
        help=f"the ForceCommand expected (default: {DEFAULT_GATEKEEPER})",
    )
    parser.set_defaults(handler=_run)
