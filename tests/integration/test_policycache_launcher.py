"""The validated-policy cache through the real launcher, a real guest and a real journald.

The gatekeeper only ever reads the default cache directory (the guest sets the
environment, so nothing there may move it); each test uses a policy at a
fresh path, so its cache file is its own, and removes it afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import gktest
import pytest
from gkhost import guest_env

from gatekeeper.policy import cache as policycache
from gatekeeper.policy import loader as policy
from gatekeeper.policy import model

pytestmark = [pytest.mark.journald, pytest.mark.accounts]

HELLO = """
[programs.hello]
argv = ["/bin/echo", "hello from the program"]

[[grant]]
users = ["{user}"]
program = "hello"
"""


@pytest.fixture
def cache_of() -> Iterator[list[Path]]:
    """Cache files this test made in the default directory; removed afterwards."""
    made: list[Path] = []
    yield made
    for path in made:
        path.unlink(missing_ok=True)


def forge(policy_path: Path, made: list[Path]) -> Path:
    """A root-written cache that differs from the file in a way ``list`` shows.

    Only root can write the cache directory, so the cache is trusted as much as
    the policy itself; a program that exists only in the cache proves that the
    gatekeeper took its policy from there.
    """
    real = policy.load(str(policy_path))
    extra = model.Program("cached-only", ("/bin/true",))
    grant = dataclasses.replace(real.grants[0], index=1, program="cached-only")
    forged = dataclasses.replace(
        real, programs={**real.programs, "cached-only": extra}, grants=(*real.grants, grant)
    )
    fingerprint = policycache.code_fingerprint()
    assert fingerprint is not None
    target = Path(policycache.cache_file(str(policy_path)))
    made.append(target)
    target.parent.mkdir(mode=0o755, exist_ok=True)
    target.write_bytes(policycache.encode(forged, fingerprint))
    target.chmod(0o644)
    return target


def listing(account: gktest.Account, gatekeeper_bin: Path, policy_path: Path) -> str:
    result = gktest.run_as(
        account, [str(gatekeeper_bin), "--policy", str(policy_path)], guest_env("list")
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_the_launcher_trusts_only_a_fresh_root_only_cache(
    accounts, write_policy, gatekeeper_bin, cache_of
) -> None:
    path = write_policy(HELLO.format(user=accounts.guest.name))
    assert "cached-only" not in listing(accounts.guest, gatekeeper_bin, path)

    cache = forge(path, cache_of)
    assert "cached-only" in listing(accounts.guest, gatekeeper_bin, path)

    cache.chmod(0o664)  # group-writable: not root's alone any more
    assert "cached-only" not in listing(accounts.guest, gatekeeper_bin, path)

    cache.chmod(0o644)
    os.chown(cache, accounts.guest.uid, accounts.guest.gid)  # owned by the guest
    assert "cached-only" not in listing(accounts.guest, gatekeeper_bin, path)

    os.chown(cache, 0, 0)
    assert "cached-only" in listing(accounts.guest, gatekeeper_bin, path)
    path.write_text(path.read_text() + "# edited\n")  # stale: the policy changed
    out = listing(accounts.guest, gatekeeper_bin, path)
    assert "hello" in out
    assert "cached-only" not in out


def test_check_refreshes_the_cache_and_the_guest_login_matches_full_validation(
    accounts, write_policy, gatekeeper_bin, journal, cache_of, world_dir
) -> None:
    path = write_policy(HELLO.format(user=accounts.guest.name))
    cache_dir = world_dir / "cache"
    argv = [str(gktest.GATEKEEPERCTL), "check", "--cache-dir", str(cache_dir), str(path)]
    assert subprocess.run([*argv[:2], "--no-cache", *argv[4:]], check=False).returncode == 0
    assert not cache_dir.exists()
    assert subprocess.run(argv, check=False, capture_output=True).returncode == 0
    assert policycache.lookup(str(path), str(cache_dir)) == policy.load(str(path))

    cache_of.append(Path(policycache.cache_file(str(path))))
    result = subprocess.run(
        [str(gktest.GATEKEEPERCTL), "check", str(path)], check=False, capture_output=True
    )
    assert result.returncode == 0
    assert cache_of[0].stat().st_uid == 0
    result = gktest.run_as(
        accounts.guest,
        ["script", "-qec", f"{gatekeeper_bin} --policy {path}", "/dev/null"],
        guest_env("run hello"),
    )
    assert result.returncode == 0
    assert b"hello from the program" in result.stdout
    records = journal.wait_for(f"GATEKEEPER_USER={accounts.guest.name}", "GATEKEEPER_PROGRAM=hello")
    record = json.loads(records[-1]["MESSAGE"])
    assert record["policy_sha256"] == policy.load(str(path)).sha256
    assert record["decision"] == "allow"


PROBE = """
import json, sys
from gatekeeper.login import entry as connect
environ = {b"SSH_TTY": b"/dev/pts/99", b"SSH_ORIGINAL_COMMAND": b"run hello",
           b"SSH_CONNECTION": b"127.0.0.1 50022 127.0.0.1 22"}
result = connect.run(["--policy", sys.argv[1]], environ, stdin_is_tty=True)
print(json.dumps({
    "exec": list(getattr(result, "argv", [])),
    "modules": sorted(m for m in ("pydantic", "structlog", "tomllib", "libtmux")
                      if m in sys.modules),
}))
"""


def test_a_cached_login_never_imports_pydantic(write_policy, cache_of) -> None:
    """Behaviour, not timing: which heavy modules a login loads, with and without the cache.

    Run as root, a miss validates in full and refreshes the cache; the next
    login is served from it, and pydantic and tomllib are never imported.
    """
    import pwd  # noqa: PLC0415 - only here

    user = pwd.getpwuid(os.getuid()).pw_name
    path = write_policy(HELLO.format(user=user))
    cache_of.append(Path(policycache.cache_file(str(path))))

    def login() -> dict[str, list[str]]:
        out = subprocess.run(
            [str(gktest.PYTHON), "-I", "-c", PROBE, str(path)],
            capture_output=True,
            check=True,
            env={},
        ).stdout
        return json.loads(out)

    cold = login()
    assert cold["exec"] == ["/bin/echo", "hello from the program"]
    assert cold["modules"] == ["pydantic", "structlog", "tomllib"]
    assert cache_of[0].is_file()

    warm = login()
    assert warm["exec"] == cold["exec"]
    assert warm["modules"] == ["structlog"]  # structlog still renders the record
