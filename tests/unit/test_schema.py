"""The committed JSON Schema is what ``gatekeeperctl schema`` prints (CI fails if stale)."""

from __future__ import annotations

import json

import gkunit
import pytest

from gatekeeper.cli import main as cli
from gatekeeper.policy import schema

COMMITTED = gkunit.REPO / "etc" / "gatekeeper.schema.json"


def test_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema.render()
    stale = "etc/gatekeeper.schema.json is stale: run `make schema` (gatekeeperctl schema)"
    assert COMMITTED.read_text() == printed, stale


def test_seed_policy_points_editors_at_the_schema() -> None:
    first = (gkunit.REPO / "etc" / "gatekeeper.toml").read_text().splitlines()[0]
    assert first == "#:schema ./gatekeeper.schema.json"


def test_schema_forbids_unknown_keys_everywhere() -> None:
    document = json.loads(COMMITTED.read_text())
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["additionalProperties"] is False
    for name, definition in document["$defs"].items():
        assert definition.get("additionalProperties") is False, name


def test_schema_documents_every_grant_key() -> None:
    grant = json.loads(COMMITTED.read_text())["$defs"]["GrantModel"]["properties"]
    assert set(grant) == {
        "users", "groups", "people", "from", "session", "program", "mode", "default",
        "not_before", "expires",
    }  # fmt: skip
    assert all(prop.get("description") for prop in grant.values())
