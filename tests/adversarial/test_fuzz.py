"""Bounded property fuzzing of the request parser, the connection path and the policy loader.

Bounded for CI (a fixed number of examples each, well under 90 s in total):

* ``request.parse`` is total on arbitrary bytes: one ``Request``, no exception;
  a parsed name is always a policy-shaped name;
* ``connect.run`` with arbitrary ``SSH_ORIGINAL_COMMAND``, ``TERM``,
  ``SSH_CONNECTION``, ``SSH_TTY`` bytes: no exception escapes, exactly one
  audit record per run, and an allowed plan's argv holds policy strings only -
  never an element derived from guest text (SECURITY.md §5, STYLE rule 5);
* the policy loader on arbitrary TOML-ish documents and on mutations of a valid
  policy: a :class:`PolicyError` or a valid ``Policy``, never another exception
  (authprogs-style fail-open on odd input is what this guards against).

atheris is not used: the parser is a few dozen lines of pure Python with no
native code, where coverage-guided byte mutation finds nothing hypothesis's
structured strategies do not, and it would add a compiled dependency.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gkadv_unit as gu
import gkunit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.login import entry as connect
from gatekeeper.login import request as rq
from gatekeeper.login.plan import ExecPlan
from gatekeeper.policy import loader as policy
from gatekeeper.policy.model import NAME_PATTERN

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

WORDS = [
    "attach", "watch", "run", "list", "whoami", "help", "--json", "shared", "editor",
    "pager", "admin", "sharedsecret", "-t", "=shared", "shared;", "#(id)", "$2", "%1",
    "a*", "adm", "/usr/bin/vim", "--", "-c", "!sh", "scp", "-f", "rsync", "--server",
]  # fmt: skip

#: Requests: raw bytes, or words of the language mixed with hostile ones.
COMMANDS = st.one_of(
    st.sampled_from([b"run editor", b"run pager", b"attach shared", b"", b"list --json"]),
    st.binary(max_size=1100),
    st.lists(st.sampled_from(WORDS), max_size=4).map(lambda ws: " ".join(ws).encode()),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), min_size=1, max_size=3).map(
        lambda ws: " ".join(ws).encode("utf-8", "surrogatepass")
    ),
)
ENV_BYTES = st.binary(max_size=80).filter(lambda b: b"\x00" not in b)
_NAME = re.compile(NAME_PATTERN)


@given(raw=st.one_of(st.none(), COMMANDS))
@settings(FUZZ, max_examples=1500)
def test_parse_is_total_and_names_are_exact(raw: bytes | None) -> None:
    request = rq.parse(raw)
    match request:
        case rq.Attach(session=name) | rq.Watch(session=name) | rq.Run(program=name):
            assert _NAME.fullmatch(name)
            assert raw is not None
            assert name.encode() in raw
        case rq.Unknown(verb=verb):
            assert raw is not None
            assert verb.isascii()
            assert verb.isprintable()
        case _:
            pass


@pytest.fixture(scope="module")
def fuzz_policy() -> Iterator[gkunit.PolicyDir]:
    for pdir in gkunit.policy_dir():
        gu.write_policy(pdir)
        yield pdir


@given(
    command=st.one_of(st.none(), COMMANDS),
    term=st.one_of(st.none(), ENV_BYTES),
    connection=st.one_of(st.none(), ENV_BYTES, st.just(b"192.0.2.7 50022 192.0.2.1 22")),
    tty=st.booleans(),
)
@settings(FUZZ, max_examples=400)
def test_connect_run_never_raises_writes_one_record_and_never_execs_guest_text(
    fuzz_policy: gkunit.PolicyDir,
    command: bytes | None,
    term: bytes | None,
    connection: bytes | None,
    tty: bool,
) -> None:
    extra: dict[str, bytes] = {}
    if term is not None:
        extra["TERM"] = term
    if connection is not None:
        extra["SSH_CONNECTION"] = connection
    result = gu.connect_once(fuzz_policy, command, tty=tty, **extra)
    assert len(result.lines) == 1, "exactly one audit record per connection"
    record = result.record
    assert all(gu.printable_ascii(line) for line in result.lines)
    strings = gu.policy_strings(gu.POLICY_BODY.format(user=gkunit.as_root_user()))
    plan = result.exec_plan
    if plan is None:
        assert isinstance(result.outcome, connect._Outcome)
        assert record["argv"] is None or record["decision"] != "allow"
        return
    assert isinstance(plan, ExecPlan)
    assert record["decision"] == "allow"
    assert list(plan.argv) == record["argv"]
    # Every argv element is a policy string (or "=" + a policy target for tmux).
    for element in plan.argv:
        assert element in strings or (element.startswith("=") and element[1:] in strings), element
    assert re.fullmatch(r"[A-Za-z0-9._+-]{1,64}", plan.env["TERM"])


# --------------------------------------------------------------------------- policy loader

SCALARS = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC))),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def toml_value(value: Any) -> str:
    """A TOML rendering (inline tables and arrays) of a generated value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string (or a TOML error)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(document: dict[str, Any]) -> bytes:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in document.items()).encode(
        "utf-8", "surrogatepass"
    )


VALID: dict[str, Any] = {
    "version": 1,
    "audit": {"sink": "file", "file": "/var/log/gk.jsonl", "on_failure": "deny"},
    "tmux": {"binary": "/usr/bin/tmux"},
    "people": {"bob": {"keys": ["SHA256:" + "A" * 43]}},
    "sessions": {"shared": {"socket": "/var/tmux/s", "owner": "alice", "target": "shared"}},
    "programs": {"editor": {"argv": ["/usr/bin/vim", "-Z", "--", "/p"]}},
    "grant": [
        {"users": ["pair"], "session": "shared", "mode": "read-only", "default": True},
        {"people": ["bob"], "program": "editor", "from": ["127.0.0.0/8"]},
    ],
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


LEAF_PATHS = _paths(VALID)


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def _load_or_policy_error(raw: bytes) -> None:
    refused: policy.PolicyError | None = None
    try:
        _data, compiled = policy.parse(raw, "fuzz.toml")
    except policy.PolicyError as error:
        refused = error
    if refused is not None:
        assert refused.problems
        text = refused.render()
        assert text
        assert all(line.startswith("fuzz.toml: ") for line in text.splitlines())
        return
    assert compiled.sha256
    for grant in compiled.grants:
        assert (grant.session is None) != (grant.program is None)


def test_the_mutation_base_is_a_valid_policy() -> None:
    _data, compiled = policy.parse(toml_document(VALID))
    assert set(compiled.sessions) == {"shared"}


@given(st.dictionaries(st.text(max_size=12), VALUES, max_size=6))
@settings(FUZZ, max_examples=300)
def test_policy_loader_on_arbitrary_documents(document: dict[str, Any]) -> None:
    _load_or_policy_error(toml_document(document))


@given(path=st.sampled_from(LEAF_PATHS), value=VALUES)
@settings(FUZZ, max_examples=600)
def test_policy_loader_on_mutations_of_a_valid_policy(path: tuple[Any, ...], value: Any) -> None:
    _load_or_policy_error(toml_document(_replace(VALID, path, value)))


@given(raw=st.binary(max_size=400))
@settings(FUZZ, max_examples=300)
def test_policy_loader_on_arbitrary_bytes(raw: bytes) -> None:
    _load_or_policy_error(raw)


@given(raw=st.binary(max_size=300))
@settings(FUZZ, max_examples=50)
def test_policy_load_from_a_file_never_raises_anything_else(raw: bytes) -> None:
    directory = Path(tempfile.mkdtemp(prefix="gk-fuzz-", dir="/tmp"))
    try:
        directory.chmod(0o755)
        path = directory / "p.toml"
        path.write_bytes(raw)
        path.chmod(0o644)
        with contextlib.suppress(policy.PolicyError):
            policy.load(str(path))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
