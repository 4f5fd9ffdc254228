"""Helpers for the packaging tier: the one build command, apt install/purge, dpkg state."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import gktest

REPO = Path(__file__).resolve().parents[1]
BUILD_DEB = REPO / "packaging" / "build-deb"
LINT_DEB = REPO / "packaging" / "lint-deb"
PACKAGE = "ssh-gatekeeper"
PREFIX = Path("/usr/lib/ssh-gatekeeper")
PYTHON = PREFIX / "venv" / "bin" / "python3"
GATEKEEPER = Path("/usr/bin/gatekeeper")
GATEKEEPERCTL = Path("/usr/bin/gatekeeperctl")
CONFFILE = Path("/etc/gatekeeper.toml")
#: apt waits this long for a lock another apt run holds, instead of failing at once.
_APT = ("apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300")


def upstream_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def installed_version() -> str | None:
    """The installed version, or None when the package is not (fully) installed."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Version}", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    status, _, version = result.stdout.partition("|")
    return version if result.returncode == 0 and status.startswith("ii") else None


def known_to_dpkg() -> bool:
    """Installed, or removed with its conffiles left (``rc``)."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() not in {"", "un"}


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        [*_APT, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert result.returncode == 0, f"apt-get {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def ensure_tool(command: str, package: str) -> None:
    """Install ``package`` from Debian when ``command`` is missing (a tool the tier needs)."""
    if shutil.which(command) is None:
        _apt("update")
        _apt("install", "--no-install-recommends", package)


def apt_install(deb: Path) -> None:
    """``apt-get install -y ./file.deb``: dependencies resolved by apt, as an admin would."""
    _apt("install", str(deb))


def apt_purge() -> None:
    _apt("purge", PACKAGE)


@dataclass(frozen=True)
class Built:
    """A .deb from packaging/build-deb, and whether the build touched the machine."""

    path: Path
    version: str
    leaked_prefix: bool


def build_deb(outdir: Path, suffix: str = "") -> Built:
    """Run the one documented build command."""
    env = dict(os.environ)
    uv = gktest.GK_PREFIX / "tools" / "bin" / "uv"
    if uv.exists():
        env["UV"] = str(uv)  # reuse bootstrap's uv instead of installing a throwaway one
    argv = [str(BUILD_DEB), *(["--version-suffix", suffix] if suffix else []), str(outdir)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=900)
    assert result.returncode == 0, f"build-deb failed:\n{result.stdout}\n{result.stderr}"
    path = Path(result.stdout.strip().splitlines()[-1])
    return Built(path, f"{upstream_version()}-1{suffix}", PREFIX.exists())
