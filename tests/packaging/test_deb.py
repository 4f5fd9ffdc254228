"""The Debian package as an admin gets it: built, linted, installed, upgraded, purged (issue 5).

Tests run in file order and share one build; the upgrade test rebuilds with a
version suffix, and the purge test comes last. Every check is against the
installed files (/usr/bin/gatekeeper, /usr/bin/gatekeeperctl, the private
venv), run as real throwaway accounts where the guest's view matters.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pty
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import gktest
import pytest
from gkdeb import (
    CONFFILE,
    GATEKEEPER,
    GATEKEEPERCTL,
    LINT_DEB,
    PACKAGE,
    PREFIX,
    PYTHON,
    Built,
    apt_install,
    apt_purge,
    build_deb,
    ensure_tool,
    installed_version,
)

from gatekeeper import launcher

pytestmark = [pytest.mark.accounts, pytest.mark.journald, pytest.mark.sshd]

DOC = Path("/usr/share/doc") / PACKAGE
EXAMPLES = DOC / "examples"
MAN_PAGES = (
    Path("/usr/share/man/man8/gatekeeper.8.gz"),
    Path("/usr/share/man/man8/gatekeeperctl.8.gz"),
    Path("/usr/share/man/man5/gatekeeper.toml.5.gz"),
    Path("/usr/share/man/man8/gatekeeper-authorized-keys.8.gz"),
)
#: sshd's AuthorizedKeysCommand: a root-owned 0755 launcher (sshd refuses it otherwise).
AUTHORIZED_KEYS = Path("/usr/bin/gatekeeper-authorized-keys")
EX_DENIED = 1


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def deb_contents(deb: Path) -> dict[str, str]:
    """``{path: 'mode owner/group'}`` of the data archive, paths absolute."""
    out = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    entries: dict[str, str] = {}
    for line in out.splitlines():
        mode, owner, _size, _date, _time, name, *_ = line.split()
        entries[name.removeprefix(".").rstrip("/") or "/"] = f"{mode} {owner}"
    return entries


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEKEEPERCTL), *args], capture_output=True, text=True, check=False, timeout=60
    )


def installed_python(code: str) -> str:
    """Run ``code`` with the package's own interpreter (isolated) and return its stdout."""
    return subprocess.run(
        [str(PYTHON), "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout


# --------------------------------------------------------------------------- the .deb


def test_build_names_the_deb_and_leaves_the_machine_untouched(deb: Built) -> None:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert deb.path.name == f"{PACKAGE}_{deb.version}_{arch}.deb"
    assert deb_field(deb.path, "Package") == PACKAGE
    assert deb_field(deb.path, "Version") == deb.version
    assert not deb.leaked_prefix, "build-deb left /usr/lib/ssh-gatekeeper on the build machine"


def test_depends_on_the_exact_python_minor_the_venv_was_built_with(deb: Built) -> None:
    minor = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    major, number = minor.split(".")
    depends = deb_field(deb.path, "Depends")
    assert f"python3 (>= {minor}~)" in depends
    assert f"python3 (<< {major}.{int(number) + 1})" in depends
    assert "libc6" in depends  # pydantic-core is a compiled extension


def test_contents_modes_and_conffile(deb: Built) -> None:
    entries = deb_contents(deb.path)
    for path in (GATEKEEPER, GATEKEEPERCTL, AUTHORIZED_KEYS):
        assert entries[str(path)] == "-rwxr-xr-x root/root"
    assert entries[str(CONFFILE)] == "-rw-r--r-- root/root"
    for name in (
        "/usr/lib/tmpfiles.d/ssh-gatekeeper.conf",
        "/usr/lib/systemd/catalog/ssh-gatekeeper.catalog",
        f"{EXAMPLES}/gatekeeper.toml",
        f"{EXAMPLES}/sshd_config.d/gatekeeper.conf",
        f"{EXAMPLES}/authorized_keys",
        f"{DOC}/copyright",
        f"{DOC}/changelog.Debian.gz",
        *(str(page) for page in MAN_PAGES),
    ):
        assert name in entries, name
    assert all(entry.endswith("root/root") for entry in entries.values())
    assert not [p for p in entries if "__pycache__" in p], "bytecode is compiled by the postinst"
    assert not [p for p in entries if p.startswith("/etc/ssh")], "the sshd snippet is inactive"
    conffiles = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(deb.path)], capture_output=True, check=True
    ).stdout
    listing = subprocess.run(
        ["tar", "-xO", "./conffiles"], input=conffiles, capture_output=True, check=True
    ).stdout.decode()
    assert listing.split() == [str(CONFFILE)]


def test_lintian_is_clean(deb: Built) -> None:
    result = subprocess.run(
        [str(LINT_DEB), str(deb.path)], capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, f"lintian:\n{result.stdout}\n{result.stderr}"


# --------------------------------------------------------------------------- installed


@pytest.mark.usefixtures("installed")
def test_conffile_denies_everything_and_checks_clean() -> None:
    st = CONFFILE.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
    result = ctl("check", str(CONFFILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "no grants: every request is denied" in result.stdout


@pytest.mark.usefixtures("installed")
def test_postinst_creates_the_runtime_dir_and_no_account_or_group() -> None:
    run_dir = Path("/run/gatekeeper")
    if shutil.which("systemd-tmpfiles"):
        st = run_dir.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    for database in ("/etc/passwd", "/etc/group"):
        names = [line.split(":", 1)[0] for line in Path(database).read_text().splitlines()]
        assert not [n for n in names if "gatekeeper" in n or n == "tmux_group"], database


def catalog_subjects() -> list[str]:
    """The journal catalog entries that name ssh-gatekeeper (journalctl -x explanations)."""
    gktest.require_tool("journalctl")
    out = subprocess.run(
        ["journalctl", "--list-catalog"], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in out.splitlines() if " ssh-gatekeeper: " in line]


@pytest.mark.usefixtures("installed")
def test_the_journal_catalog_is_registered_by_systemds_trigger() -> None:
    assert catalog_subjects(), "journalctl --list-catalog does not know the gatekeeper's ids"


@pytest.mark.usefixtures("installed")
def test_the_launcher_is_the_rendered_isolated_launcher() -> None:
    text = GATEKEEPER.read_text()
    assert text == launcher.render(str(PYTHON))
    assert text.splitlines()[0] == f"#!{PYTHON} -I"
    assert GATEKEEPERCTL.read_text().splitlines()[0] == f"#!{PYTHON} -I"
    # Every directory from / to the launchers and the private venv: root's alone.
    for path in (GATEKEEPER, GATEKEEPERCTL, PYTHON.parent, PREFIX / "venv" / "lib"):
        for part in [path, *path.parents]:
            st = part.stat()
            assert st.st_uid == 0, part
            assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), part


@pytest.mark.usefixtures("installed")
def test_seed_example_and_schema_are_the_repositorys() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert (EXAMPLES / "gatekeeper.toml").read_text() == (repo / "etc/gatekeeper.toml").read_text()
    schema = json.loads((EXAMPLES / "gatekeeper.schema.json").read_text())
    assert schema == json.loads(ctl("schema").stdout)
    result = ctl("check", str(EXAMPLES / "gatekeeper.toml"))
    assert result.returncode == 0, result.stdout + result.stderr


def _match_body(text: str) -> list[tuple[str, str]]:
    body: list[tuple[str, str]] = []
    in_match = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("Match "):
            in_match = True
        elif line and in_match:
            keyword, _, value = line.partition(" ")
            body.append((keyword, value.strip()))
    return body


@pytest.mark.usefixtures("installed")
def test_sshd_snippet_is_the_hardened_block_and_passes_sshd(world_dir: Path) -> None:
    snippet = EXAMPLES / "sshd_config.d" / "gatekeeper.conf"
    hardened = json.loads(
        installed_python(
            "import json; from gatekeeper.deploy import sshdconfig as s; "
            "print(json.dumps(s.HARDENED))"
        )
    )
    body = _match_body(snippet.read_text())
    assert body[0] == ("ForceCommand", str(GATEKEEPER))
    assert body[1:] == [tuple(pair) for pair in hardened]

    gktest.require_tool("/usr/sbin/sshd", "ssh-keygen")
    key = world_dir / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = gktest.write_root_file(
        world_dir / "sshd_config", f"HostKey {key}\nInclude {snippet}\n", 0o600
    )
    privsep = Path("/run/sshd")  # sshd -t refuses to run without its privsep directory
    made = not privsep.exists()
    privsep.mkdir(mode=0o755, exist_ok=True)
    try:
        checked = subprocess.run(
            ["/usr/sbin/sshd", "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        effective = subprocess.run(
            ["/usr/sbin/sshd", "-T", "-f", str(config), "-C", "user=pair,host=h,addr=127.0.0.1"],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if made:
            with contextlib.suppress(OSError):
                privsep.rmdir()
    assert checked.returncode == 0, checked.stderr
    assert effective.returncode == 0, effective.stderr
    for line in (
        f"forcecommand {GATEKEEPER}",
        "disableforwarding yes",
        "permittunnel no",
        "permituserenvironment no",
        "exposeauthinfo yes",
    ):
        assert line in effective.stdout.splitlines()


def _man_text(page: Path) -> str:
    return gzip.decompress(page.read_bytes()).decode()


@pytest.mark.usefixtures("installed")
def test_man_pages_render_cleanly_and_match_help_and_schema() -> None:
    ensure_tool("man", "man-db")
    for page in MAN_PAGES:
        rendered = subprocess.run(
            ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "MANWIDTH": "80"},
        )
        assert rendered.returncode == 0
        assert rendered.stderr == "", f"{page}: {rendered.stderr}"

    # Every subcommand and option that --help shows is in gatekeeperctl(8).
    helps = json.loads(
        installed_python(
            "import json; from gatekeeper.cli.main import parser; from gatekeeper import manpages\n"
            "print(json.dumps({n: s.format_help() for n, _, s in manpages._subcommands(parser())}))"
        )
    )
    ctl_page = _man_text(MAN_PAGES[1]).replace("\\-", "-")
    assert helps
    for name, text in helps.items():
        assert f".SS {name}\n" in ctl_page
        for option in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text)) - {"--help"}:
            assert option in ctl_page, f"{name} {option}"

    # Every key of the schema is in gatekeeper.toml(5).
    schema = json.loads(ctl("schema").stdout)
    toml_page = _man_text(MAN_PAGES[2]).replace("\\-", "-")
    for model in schema["$defs"].values():
        for key in model.get("properties", {}):
            assert f"\\fB{key}\\fR = " in toml_page, key


# --------------------------------------------------------------------------- the guest's view


def _policy(directory: Path, journal_socket: str, body: str = "") -> Path:
    text = f'version = 1\n\n[audit]\njournal_socket = "{journal_socket}"\n{body}'
    return gktest.write_root_file(directory / "policy.toml", text, 0o644)


def _guest_env(account: gktest.Account, command: str) -> dict[str, str]:
    """What sshd gives a forced command (SECURITY.md §9); run_on_pty adds SSH_TTY."""
    return {
        "HOME": account.home,
        "USER": account.name,
        "LOGNAME": account.name,
        "PATH": "/usr/bin:/bin",
        "SHELL": "/bin/sh",
        "SSH_CONNECTION": "127.0.0.1 50022 127.0.0.1 22",
        "SSH_CLIENT": "127.0.0.1 50022 22",
        "SSH_ORIGINAL_COMMAND": command,
        "TERM": "xterm",
    }


def run_on_pty(
    account: gktest.Account,
    argv: list[str],
    env: Mapping[str, str],
    typed: bytes = b"",
    cwd: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` as ``account`` with a terminal on stdin (already holding ``typed``)."""
    master, slave = pty.openpty()
    try:
        if typed:
            os.write(master, typed)
        return gktest.run_as(
            account, argv, {**env, "SSH_TTY": os.ttyname(slave)}, stdin=slave, cwd=cwd
        )
    finally:
        os.close(slave)
        os.close(master)


@dataclass
class Planted:
    """Code planted where a non-isolated Python would run it; each plant touches a marker."""

    markers: Path
    env: dict[str, str]
    typed: bytes

    def fired(self) -> set[str]:
        return {p.name for p in self.markers.iterdir()}

    def reset(self) -> None:
        for path in self.markers.iterdir():
            path.unlink()


def _touch(markers: Path, name: str) -> str:
    return f"open({str(markers / name)!r}, 'w').close()\n"


@pytest.fixture
def guest(installed: Built) -> Iterator[gktest.Account]:
    """A throwaway guest account with /bin/sh and a root-owned home, once the package is in."""
    assert installed.path.exists()
    account = gktest.create_account(f"gk-pkg-{secrets.token_hex(2)}")
    try:
        yield account
    finally:
        gktest.delete_account(account.name)


@pytest.fixture
def planted(guest: gktest.Account, world_dir: Path) -> Planted:
    """Plants in the guest's user site (.pth, usercustomize) and PYTHON* variables."""
    minor = installed_python("import sys; print('%d.%d' % sys.version_info[:2])").strip()
    markers = world_dir / "markers"
    markers.mkdir()
    os.chown(markers, guest.uid, guest.gid)
    home = Path(guest.home)
    site = home / ".local" / "lib" / f"python{minor}" / "site-packages"
    site.mkdir(parents=True)
    (site / "evil.pth").write_text("import os; " + _touch(markers, "pth"))
    (site / "usercustomize.py").write_text(_touch(markers, "usercustomize"))
    # The guest's own files, as in a real home (the home itself stays root's).
    for path in [*site.iterdir(), site, *site.relative_to(home).parents]:
        if path != Path():
            os.chown(home / path, guest.uid, guest.gid)

    pythonpath = world_dir / "pythonpath"
    (pythonpath / "gatekeeper").mkdir(parents=True)
    (pythonpath / "gatekeeper" / "__init__.py").write_text(_touch(markers, "shadow-package"))
    (pythonpath / "sitecustomize.py").write_text(_touch(markers, "sitecustomize"))
    startup = world_dir / "startup.py"
    startup.write_text(_touch(markers, "pythonstartup"))
    env = {
        "PYTHONINSPECT": "1",
        "PYTHONPATH": str(pythonpath),
        "PYTHONSTARTUP": str(startup),
    }
    typed = (_touch(markers, "inspect") + "raise SystemExit(3)\n").encode()
    return Planted(markers, env, typed)


def test_installed_launcher_ignores_pythoninspect_pythonpath_and_user_site(
    guest: gktest.Account, planted: Planted, journal, world_dir: Path
) -> None:
    policy = _policy(world_dir, journal.socket)  # no grants
    env = {**_guest_env(guest, "run hello"), **planted.env}

    result = run_on_pty(
        guest, [str(GATEKEEPER), "--policy", str(policy)], env, planted.typed, cwd=guest.home
    )

    assert planted.fired() == set(), "the launcher ran planted code"
    assert result.returncode == EX_DENIED, result.stderr
    assert result.stderr.decode().startswith("gatekeeper: access denied (ref ")
    assert result.stdout == b""
    record = journal.wait_for(f"GATEKEEPER_USER={guest.name}")[-1]
    assert json.loads(record["MESSAGE"])["decision"] == "deny"

    # Control: the plants are live. The same interpreter without -I runs the
    # PYTHONPATH ones and the inspect prompt; Debian's python3 runs the user site
    # (a venv has none). PYTHONSTARTUP only runs for a plain interactive start.
    argv = [str(PYTHON), "-c", "import gatekeeper; 1/0"]
    run_on_pty(guest, argv, env, planted.typed, cwd=guest.home)
    assert {"shadow-package", "sitecustomize", "inspect"} <= planted.fired()
    planted.reset()
    run_on_pty(guest, ["/usr/bin/python3", "-c", "pass"], env, planted.typed, cwd=guest.home)
    assert {"pth", "usercustomize"} <= planted.fired()


def test_installed_gatekeeper_execs_the_policys_program(
    guest: gktest.Account, journal, world_dir: Path
) -> None:
    greeting = f"hello from the package {secrets.token_hex(3)}"
    policy = _policy(
        world_dir,
        journal.socket,
        f'\n[programs.hello]\nargv = ["/bin/echo", "{greeting}"]\n\n'
        f'[[grant]]\nusers = ["{guest.name}"]\nprogram = "hello"\n',
    )
    result = run_on_pty(
        guest, [str(GATEKEEPER), "--policy", str(policy)], _guest_env(guest, "run hello")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == greeting + "\n"
    record = journal.wait_for(f"GATEKEEPER_USER={guest.name}")[-1]
    message = json.loads(record["MESSAGE"])
    assert (message["decision"], message["program"]) == ("allow", "hello")
    assert message["argv"] == ["/bin/echo", greeting]


# --------------------------------------------------------------------------- upgrade, purge


def test_upgrade_keeps_an_edited_conffile(installed: Built, deb_dir: Path) -> None:
    edit = f"# edited by the admin {secrets.token_hex(4)}\n"
    with CONFFILE.open("a") as handle:
        handle.write(edit)
    newer = build_deb(deb_dir / "upgrade", suffix="+test1")

    apt_install(newer.path)

    assert installed_version() == newer.version != installed.version
    assert CONFFILE.read_text().endswith(edit)
    assert not Path(f"{CONFFILE}.dpkg-dist").exists()
    assert not Path(f"{CONFFILE}.dpkg-new").exists()
    result = ctl("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ctl("--version").stdout.strip() == f"gatekeeperctl {newer.version.split('-')[0]}"


@pytest.mark.usefixtures("installed")
def test_purge_leaves_no_files() -> None:
    listed = subprocess.run(
        ["dpkg-query", "-L", PACKAGE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert str(CONFFILE) in listed
    # gatekeeperctl check (as root) writes the validated-policy cache: purge removes it.
    assert ctl("check").returncode == 0
    cache = Path(
        installed_python(
            f"from gatekeeper.policy.cache import cache_file; print(cache_file({str(CONFFILE)!r}))"
        ).strip()
    )
    assert cache.is_file()

    apt_purge()

    left = []
    for path in map(Path, listed):
        if path == Path("/") or not os.path.lexists(path):
            continue
        # Shared directories (/usr/bin, /usr/share/man/man8, ...) belong to others too.
        owned = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, check=False)
        if not (path.is_dir() and owned.returncode == 0):
            left.append(str(path))
    assert left == []
    for path in (CONFFILE, PREFIX, DOC, Path("/run/gatekeeper"), cache):
        assert not os.path.lexists(path), path
    assert catalog_subjects() == []
    status = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode != 0 or status.stdout.strip() in {"", "un"}
