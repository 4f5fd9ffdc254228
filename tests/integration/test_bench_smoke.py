"""The benchmark still runs end to end and cleans up after itself (never a timing test).

``bench/run --quick`` in miniature: 2 rounds, 5 simultaneous logins, a 100-grant
policy, against the venv under test and without the PyPI peer. The numbers are
not looked at; what is checked is that every login succeeded, every login left
exactly one record, and the account, the journald namespace, the sshd and the
scratch directories the bench made are gone afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import subprocess
from pathlib import Path

import gktest
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.journald, pytest.mark.accounts]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gkbench.py"


def test_the_quick_bench_runs_every_part_and_leaves_nothing_behind() -> None:
    gktest.require_root()
    gktest.require_tool("/usr/sbin/sshd", "/lib/systemd/systemd-journald", "ssh", "useradd")
    result = subprocess.run(
        [str(gktest.PYTHON), "-I", str(BENCH), "--quick", "--no-authprogs",
         "--venv", str(gktest.VENV)],
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = result.stdout
    parts = (
        "(1) gatekeeper / import structlog",
        "(2) gatekeeper / /bin/true over ssh",
        "(3) 100 / 10 grants, start->exec",
        "(4) login latency p50 / p95 / max",
        "(6) 1,000 records: audit --user X --json / journalctl GATEKEEPER_USER=X",
        "(6) 1,000 records: audit --json / journalctl -o json | jq -c .MESSAGE",
        "(6) 1,000 records: audit --sessions peak RSS",
    )
    for part in parts:
        assert part in table, table
    assert "FAILED" not in table, table
    assert re.search(r"\(4\) 5 simultaneous logins: succeeded \s*\| 5/5 ", table), table
    assert re.search(r"\| 5 \(5, 5\) ", table), table  # 5 records, 5 connection ids, 5 allow
    # Part 6 read back every generated record, and joined them into 250 visits.
    assert "(1000 / 1000)" in table, table
    assert "250 visits" in table, table

    log = result.stderr
    account = re.search(r"guest account (\S+)", log)
    work = re.search(r"work directory (\S+), journald namespace (\S+)", log)
    site = re.search(r"sshd directory (\S+)", log)
    assert account, log
    assert work, log
    assert site, log
    with pytest.raises(KeyError):
        pwd.getpwnam(account.group(1))
    namespace = work.group(2)
    assert not os.path.exists(work.group(1))
    assert not os.path.exists(site.group(1))
    assert not os.path.exists(f"/run/systemd/journal.{namespace}")
    assert glob.glob(f"/var/log/journal/*.{namespace}") == []
    scale = namespace.replace("gkbench", "gkscale")
    assert not os.path.exists(f"/run/systemd/journal.{scale}")
    assert not os.path.exists(f"/etc/systemd/journald@{scale}.conf")
    assert glob.glob(f"/var/log/journal/*.{scale}") == []
