"""MESSAGE_ID per event type, the journald catalog, and the documented field table."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import gktest
import pytest
from gkhost import guest_env

from gatekeeper.login import audit
from gatekeeper.policy.model import AuditConfig

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "packaging" / "catalog" / "ssh-gatekeeper.catalog"
DOCS = ROOT / "docs" / "audit.md"


def catalog_root(tmp_path: Path) -> Path:
    gktest.require_tool("journalctl")
    root = tmp_path / "root"
    target = root / "usr" / "lib" / "systemd" / "catalog"
    target.mkdir(parents=True)
    shutil.copy(CATALOG, target / CATALOG.name)
    update = subprocess.run(
        ["journalctl", f"--root={root}", "--update-catalog"], capture_output=True, check=False
    )
    assert update.returncode == 0, update.stderr
    assert not update.stderr.strip(), update.stderr  # journalctl warns on malformed entries
    return root


def test_the_catalog_loads_and_explains_every_message_id(tmp_path: Path) -> None:
    root = catalog_root(tmp_path)
    listed = subprocess.run(
        ["journalctl", f"--root={root}", "--list-catalog"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.splitlines()
    ids = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in listed}
    assert set(ids) == set(audit.MESSAGE_IDS.values())
    assert all(subject.startswith("ssh-gatekeeper: ") for subject in ids.values())
    # Each entry has a body, not only a subject.
    for message_id in audit.MESSAGE_IDS.values():
        entry = subprocess.run(
            ["journalctl", f"--root={root}", "--dump-catalog", message_id],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        body = entry.split("\n\n", 1)[1]
        assert len(body.split()) > 20, message_id


@pytest.mark.journald
@pytest.mark.accounts
def test_journalctl_x_explains_a_real_denial(accounts, write_policy, journal, tmp_path) -> None:
    policy = write_policy('[programs.t]\nargv = ["/bin/true"]\n')
    result = gktest.run_as(
        accounts.guest, [str(gktest.GATEKEEPER), "--policy", str(policy)], guest_env("bogus")
    )
    assert result.returncode == 1
    ref = result.stderr.decode().split("(ref ", 1)[1].split(")", 1)[0]
    (entry,) = journal.wait_for(f"GATEKEEPER_CONNECTION_ID={ref}")
    deny_id = audit.MESSAGE_IDS["connect-deny"]
    assert entry["MESSAGE_ID"] == deny_id
    assert json.loads(entry["MESSAGE"])["message_id"] == deny_id

    # What `journalctl -x` substitutes must be there: every @FIELD@ of the entry.
    # (-x reads the system's catalog database even with --root, so the text is
    # rendered here from the catalog built into a test root.)
    root = catalog_root(tmp_path)
    text = subprocess.run(
        ["journalctl", f"--root={root}", "--dump-catalog", deny_id],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    fields = set(re.findall(r"@([A-Z_]+)@", text))
    assert fields
    assert fields <= set(entry), fields - set(entry)
    rendered = re.sub(r"@([A-Z_]+)@", lambda m: entry[m.group(1)], text)
    assert f"Subject: SSH guest {accounts.guest.name} was denied by the gatekeeper" in rendered
    assert f'ending in "ref {ref}"' in rendered


def test_every_event_type_gets_its_fixed_message_id(journal) -> None:
    """Records written through emit carry MESSAGE_ID natively and message_id in the JSON."""
    tag = f"mid{secrets.token_hex(5)}"
    config = AuditConfig(journal_socket=journal.socket)
    cases = {
        "connect-allow": {"event": "connect", "decision": "allow"},
        "connect-deny": {"event": "connect", "decision": "deny"},
        "connect-error": {"event": "connect", "decision": "error"},
        "join": {"event": "join", "decision": "allow"},
        "leave": {"event": "leave", "decision": "allow", "ended": "detached"},
        "kick": {"event": "kick", "decision": "allow"},
        "revoke": {"event": "revoke", "decision": "allow"},
        "share": {"event": "share", "decision": "allow"},
    }
    for kind, record in cases.items():
        audit.emit(config, {**record, "connection_id": f"{tag}-{kind}"})
    for kind in cases:
        (entry,) = journal.wait_for(f"GATEKEEPER_CONNECTION_ID={tag}-{kind}")
        assert entry["MESSAGE_ID"] == audit.MESSAGE_IDS[kind], kind
        assert json.loads(entry["MESSAGE"])["message_id"] == audit.MESSAGE_IDS[kind], kind


def test_the_documented_field_table_is_the_code() -> None:
    text = DOCS.read_text()
    table = text.split("<!-- fields:begin -->", 1)[1].split("<!-- fields:end -->", 1)[0]
    rows = re.findall(r"^\| `([a-z_0-9]+)` \| (.+) \|$", table, flags=re.MULTILINE)
    assert rows == [(name, meaning) for name, meaning in audit.FIELDS]


def test_the_documented_message_ids_are_the_code() -> None:
    rows = dict(
        re.findall(r"^\| `([a-z-]+)` \| `([0-9a-f]{32})` \|$", DOCS.read_text(), re.MULTILINE)
    )
    assert rows == audit.MESSAGE_IDS
