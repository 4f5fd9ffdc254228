"""scp, sftp and rsync reach the gatekeeper as commands: each is denied and audited once.

Corpus SUB-01/02/04: modern scp and sftp arrive as the sftp subsystem
(``SSH_ORIGINAL_COMMAND=/usr/lib/openssh/sftp-server``), legacy ``scp -O`` as
``scp -f FILE``, rsync as ``rsync --server ...``. Nothing may be written to
stdout before the denial (it would corrupt the binary protocol, SUB-08).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import gksshd
import pytest

pytestmark = [pytest.mark.sshd, pytest.mark.accounts, pytest.mark.journald]


def transfer_options(deployment) -> list[str]:
    """The ssh options in scp/sftp spelling (``-P`` for the port)."""
    options: list[str] = deployment.site.client_options(
        deployment.keys["guest"], deployment.sshd.port
    )
    index = options.index("-p")
    options[index] = "-P"
    return options


def run_and_record(deployment, journal, argv: list[str], **kwargs) -> tuple[int, dict[str, Any]]:
    user = deployment.accounts.guest.name
    before = len(journal.records(f"GATEKEEPER_USER={user}"))
    result = subprocess.run(
        argv, capture_output=True, timeout=30, check=False, env=gksshd.client_env(), **kwargs
    )
    records = journal.wait_for(f"GATEKEEPER_USER={user}", count=before + 1, timeout=30)
    assert len(records) == before + 1, "one record per attempt"
    return result.returncode, json.loads(records[-1]["MESSAGE"])


def test_sftp_is_denied_and_audited(deployment, journal) -> None:
    user = deployment.accounts.guest.name
    code, record = run_and_record(
        deployment,
        journal,
        ["sftp", *transfer_options(deployment), "-b", "-", f"{user}@127.0.0.1"],
        input=b"get /etc/hostname /dev/null\n",
    )
    assert code != 0
    assert record["original_command"] == "/usr/lib/openssh/sftp-server"
    assert (record["decision"], record["reason"], record["exit_code"]) == (
        "deny",
        "unknown_command",
        1,
    )


def test_scp_upload_is_denied_and_audited(deployment, journal, tmp_path) -> None:
    user = deployment.accounts.guest.name
    source = tmp_path / "upload.txt"
    source.write_text("data\n")
    code, record = run_and_record(
        deployment,
        journal,
        ["scp", *transfer_options(deployment), str(source), f"{user}@127.0.0.1:/tmp/gk-up"],
    )
    assert code != 0
    assert record["decision"] == "deny"
    assert record["original_command"] == "/usr/lib/openssh/sftp-server"
    assert not Path("/tmp/gk-up").exists()


def test_legacy_scp_download_is_denied_and_audited(deployment, journal, tmp_path) -> None:
    user = deployment.accounts.guest.name
    target = tmp_path / "passwd"
    code, record = run_and_record(
        deployment,
        journal,
        ["scp", "-O", *transfer_options(deployment), f"{user}@127.0.0.1:/etc/passwd", str(target)],
    )
    assert code != 0
    assert record["decision"] == "deny"
    assert record["original_command"] == "scp -f /etc/passwd"
    assert not target.exists()


def test_rsync_is_denied_and_audited(deployment, journal, tmp_path) -> None:
    user = deployment.accounts.guest.name
    target = tmp_path / "copy"
    if shutil.which("rsync"):
        ssh = " ".join(
            ["ssh", *deployment.site.client_options(deployment.keys["guest"], deployment.sshd.port)]
        )
        argv = ["rsync", "-e", ssh, f"{user}@127.0.0.1:/etc/passwd", str(target)]
    else:
        # Without the rsync client, send exactly what it would ask the server to run.
        argv = deployment.argv(
            "guest",
            command=("rsync", "--server", "--sender", "-logDtpre.iLsfxCIvu", ".", "/etc/passwd"),
        )
    code, record = run_and_record(deployment, journal, argv)
    assert code != 0
    assert record["decision"] == "deny"
    assert record["original_command"].startswith("rsync --server --sender ")
    assert not target.exists()
