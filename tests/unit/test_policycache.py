"""The validated-policy cache: a hit equals full validation; any doubt is a silent miss.

Tests run as root, so other owners are simulated with ``os.chown`` to a uid
that needs no account (the checks compare numbers, not names). The cache
directory is passed as an argument: the gatekeeper itself only ever uses
the default one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import NamedTuple

import gkunit
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.login import request as rq
from gatekeeper.login.decide import decide
from gatekeeper.policy import cache as policycache
from gatekeeper.policy import loader as policy
from gatekeeper.policy import model
from gatekeeper.policy.check import check

NOBODY = 65534

RICH = """\
version = 1

[audit]
sink = "file"
identifier = "gk-rich"
journal_socket = "/run/systemd/journal.rich/socket"
file = "/var/log/gatekeeper/rich.jsonl"
on_failure = "allow"

[tmux]
binary = "/usr/local/bin/tmux"

[people.bob]
keys = ["SHA256:{a}", "SHA256:{b}"]

[people.carol]
keys = ["SHA256:{c}"]

[sessions.shared]
socket = "/var/tmux/pair_sock"
owner = "alice"
target = "shared"

[sessions.ops]
socket = "/var/tmux/ops/sock"
owner = "bob"
target = "ops-1"

[programs.editor]
argv = ["/usr/bin/vim", "-Z", "-u", "DEFAULTS", "--", "/my_project"]

[programs.top]
argv = ["/usr/bin/top"]

[[grant]]
users = ["pair"]
groups = ["tmux_group"]
people = ["bob"]
from = ["127.0.0.0/8", "2001:db8::/32", "::ffff:10.0.0.0/104"]
session = "shared"
mode = "read-write"
default = true
not_before = 2026-01-01T00:00:00Z
expires = 2026-12-31T23:59:59+02:00

[[grant]]
people = ["carol"]
session = "ops"
expires = 2027-01-01T00:00:00.250-05:30

[[grant]]
users = ["pair"]
program = "editor"
""".format(a="A" * 43, b="B" * 43, c="C" * 43)


def many_grants(count: int) -> str:
    lines = ["[programs.top]", 'argv = ["/usr/bin/top"]']
    for index in range(count):
        lines += [
            "[[grant]]",
            f'users = ["u{index}"]',
            f'from = ["10.{index % 256}.0.0/16"]' if index % 3 == 0 else "",
            'program = "top"',
        ]
    return "version = 1\n" + "\n".join(lines) + "\n"


SEED = (gkunit.REPO / "etc" / "gatekeeper.toml").read_text()


class Place(NamedTuple):
    root: Path
    cache: str

    def policy(self, text: str, name: str = "gatekeeper.toml") -> str:
        path = self.root / name
        path.write_text(text)
        path.chmod(0o644)
        return str(path)

    def cache_file(self, policy_path: str) -> Path:
        return Path(policycache.cache_file(policy_path, self.cache))


@pytest.fixture
def place() -> Iterator[Place]:
    for directory in gkunit.policy_dir():
        yield Place(directory.path, str(directory.path / "cache"))


def cached(place: Place, text: str) -> str:
    path = place.policy(text)
    assert policycache.store(policy.load(path), place.cache)
    return path


@pytest.mark.parametrize("text", [SEED, RICH, many_grants(300)], ids=["seed", "rich", "300-grants"])
def test_a_hit_equals_full_validation(place: Place, text: str) -> None:
    path = cached(place, text)
    hit = policycache.lookup(path, place.cache)
    assert hit is not None
    assert hit == policy.load(path)


def test_a_hit_keeps_types_the_decision_relies_on(place: Place) -> None:
    hit = policycache.lookup(cached(place, RICH), place.cache)
    assert hit is not None
    first, second, _ = hit.grants
    assert [str(n) for n in first.from_] == ["127.0.0.0/8", "2001:db8::/32", "::ffff:a00:0/104"]
    assert first.expires is not None
    assert first.expires.utcoffset() is not None
    assert second.expires is not None
    assert second.expires.isoformat() == "2027-01-01T00:00:00.250000-05:30"
    assert isinstance(hit.people["bob"], frozenset)
    assert hit.programs["editor"].argv[0] == "/usr/bin/vim"


def test_the_cache_is_root_owned_0644_in_a_root_owned_0755_directory(place: Place) -> None:
    path = cached(place, SEED)
    directory = os.stat(place.cache)
    entry = os.stat(place.cache_file(path))
    assert (directory.st_uid, directory.st_mode & 0o7777) == (0, 0o755)
    assert (entry.st_uid, entry.st_mode & 0o7777) == (0, 0o644)
    assert sorted(os.listdir(place.cache)) == [place.cache_file(path).name]  # no temp left


def test_an_edited_policy_is_not_served_from_a_stale_cache(place: Place) -> None:
    path = cached(place, SEED)
    place.policy(SEED.replace('mode = "read-only"', 'mode = "read-write"'))
    assert policycache.lookup(path, place.cache) is None
    assert policy.load(path).grants[0].mode == model.READ_WRITE


class Tamper(NamedTuple):
    name: str
    change: Callable[[Place, str], None]


def _chmod(mode: int) -> Callable[[Place, str], None]:
    return lambda place, path: place.cache_file(path).chmod(mode)


def _chown_file(place: Place, path: str) -> None:
    os.chown(place.cache_file(path), NOBODY, 0)


def _chown_dir(place: Place, path: str) -> None:
    del path
    os.chown(place.cache, NOBODY, 0)


def _chmod_dir(mode: int) -> Callable[[Place, str], None]:
    return lambda place, _path: os.chmod(place.cache, mode)


def _rewrite(change: Callable[[dict[str, object]], None]) -> Callable[[Place, str], None]:
    def apply(place: Place, path: str) -> None:
        target = place.cache_file(path)
        document = json.loads(target.read_text())
        change(document)
        target.write_text(json.dumps(document))

    return apply


def _set(key: str, value: object) -> Callable[[dict[str, object]], None]:
    return lambda document: document.__setitem__(key, value)


def _body(change: Callable[[dict[str, object]], None]) -> Callable[[dict[str, object]], None]:
    def apply(document: dict[str, object]) -> None:
        body = document["policy"]
        assert isinstance(body, dict)
        change(body)

    return apply


#: Positions in a cached grant array.
FIELD = {
    name: position
    for position, name in enumerate(
        ("users", "groups", "people", "from", "session", "program", "mode", "default",
         "not_before", "expires")
    )
}  # fmt: skip


def _grant_array(change: Callable[[list[object]], None]) -> Callable[[dict[str, object]], None]:
    """Change the first grant (stored as the JSON text of an array)."""

    def apply(body: dict[str, object]) -> None:
        grants = body["grants"]
        assert isinstance(grants, list)
        array = json.loads(grants[0])
        change(array)
        grants[0] = json.dumps(array)

    return _body(apply)


def _grant_field(key: str, value: object) -> Callable[[dict[str, object]], None]:
    return _grant_array(lambda array: array.__setitem__(FIELD[key], value))


def _symlink_to_other(place: Place, path: str) -> None:
    other = Path(place.cache) / "elsewhere.json"
    place.cache_file(path).rename(other)
    place.cache_file(path).symlink_to(other)
    os.chown(other, NOBODY, 0)


TAMPERS = [
    Tamper("group-writable file", _chmod(0o664)),
    Tamper("world-writable file", _chmod(0o646)),
    Tamper("file owned by another uid", _chown_file),
    Tamper("directory owned by another uid", _chown_dir),
    Tamper("group-writable directory", _chmod_dir(0o775)),
    Tamper("world-writable sticky directory", _chmod_dir(0o1777)),
    Tamper("symlink to a file owned by another uid", _symlink_to_other),
    Tamper("truncated", lambda place, path: place.cache_file(path).write_text('{"format":')),
    Tamper("not an object", lambda place, path: place.cache_file(path).write_text("[]")),
    Tamper("other format", _rewrite(_set("format", 999))),
    Tamper("other validator code", _rewrite(_set("code", "0" * 64))),
    Tamper("other sha256", _rewrite(_set("sha256", "0" * 64))),
    Tamper("other path", _rewrite(_set("path", "/etc/other.toml"))),
    Tamper("mode outside the enum", _rewrite(_grant_field("mode", "rw"))),
    Tamper("default not a bool", _rewrite(_grant_field("default", 1))),
    Tamper("grant too short", _rewrite(_grant_array(lambda grant: grant.pop()))),
    Tamper("grant an object", _rewrite(_body(lambda body: body.__setitem__("grants", [{}])))),
    Tamper("grant an array", _rewrite(_body(lambda body: body.__setitem__("grants", [[]])))),
    Tamper("user not a string", _rewrite(_grant_field("users", ["pair", 7]))),
    Tamper("from not a list", _rewrite(_grant_field("from", ""))),
    Tamper("users not a list", _rewrite(_grant_field("users", "pair"))),
    Tamper("both targets", _rewrite(_grant_field("program", "editor"))),
    Tamper("bad network", _rewrite(_grant_field("from", ["10.0.0.1/8"]))),
    Tamper("naive datetime", _rewrite(_grant_field("expires", "2026-12-31T23:59:59"))),
    Tamper("missing key", _rewrite(_body(lambda body: body.pop("grants")))),
    Tamper("sink outside the enum", _rewrite(_body(lambda body: body.__setitem__("audit", {})))),
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
def test_any_doubt_about_the_cache_is_a_silent_miss(place: Place, tamper: Tamper) -> None:
    path = cached(place, RICH)
    tamper.change(place, path)
    assert policycache.lookup(path, place.cache) is None
    # The full load is unaffected: the policy itself is fine.
    assert policy.load(path).sha256


def test_a_cache_made_for_another_path_is_ignored(place: Place) -> None:
    first = cached(place, SEED)
    second = place.policy(SEED, "copy.toml")  # same bytes, same sha256, other path
    shutil.copy(place.cache_file(first), place.cache_file(second))
    assert policycache.lookup(second, place.cache) is None


def test_a_relative_path_finds_the_cache_of_its_absolute_path(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached(place, SEED)
    monkeypatch.chdir(place.root)
    hit = policycache.lookup("gatekeeper.toml", place.cache)
    assert hit is not None
    assert hit.path == "gatekeeper.toml"


@pytest.mark.parametrize("state", ["missing", "group-writable", "owned by another uid"])
def test_an_unsafe_policy_file_is_a_miss_even_with_a_cache(place: Place, state: str) -> None:
    path = cached(place, SEED)
    if state == "missing":
        os.unlink(path)
    elif state == "group-writable":
        os.chmod(path, 0o664)
    else:
        os.chown(path, NOBODY, 0)
    assert policycache.lookup(path, place.cache) is None
    with pytest.raises(policy.PolicyError):
        policy.load(path)


@pytest.mark.parametrize("setup", ["group-writable", "owned by another uid", "a file"])
def test_store_refuses_an_unsafe_cache_directory(place: Place, setup: str) -> None:
    path = place.policy(SEED)
    if setup == "a file":
        Path(place.cache).write_text("")
    else:
        os.mkdir(place.cache, 0o755)
        if setup == "group-writable":
            os.chmod(place.cache, 0o775)  # noqa: S103 - the unsafe mode under test
        else:
            os.chown(place.cache, NOBODY, 0)
    assert not policycache.store(policy.load(path), place.cache)


def test_check_writes_the_cache_for_a_valid_policy_only(place: Place) -> None:
    good = place.policy(SEED)
    assert check(good, cache_dir=place.cache).ok
    assert policycache.lookup(good, place.cache) == policy.load(good)
    bad = place.policy(SEED + "\n[[grant]]\nusers = ['x']\nsession = 'nope'\n", "bad.toml")
    assert not check(bad, cache_dir=place.cache).ok
    assert not place.cache_file(bad).exists()


def test_check_without_a_cache_dir_writes_nothing(place: Place) -> None:
    assert check(place.policy(SEED)).ok
    assert not os.path.exists(place.cache)


def test_the_code_fingerprint_covers_the_validator_sources() -> None:
    first = policycache.code_fingerprint()
    assert first is not None
    assert len(first) == 64
    assert policycache.code_fingerprint() == first


# --------------------------------------------------------------------------- pruning

USERS = ("pair", "alice", "bob")
GROUPS = ("g1", "g2")
KEYS = tuple(f"SHA256:{c * 43}" for c in "ABC")
PEOPLE = {"p1": frozenset(KEYS[:1]), "p2": frozenset(KEYS[1:])}
WHEN = [None, datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)]
REQUESTS = [b"", b"run e1", b"run e2", b"attach s1", b"watch s1", b"attach s2", b"list",
            b"list --json", b"whoami", b"help", b"bash"]  # fmt: skip


def subset(values: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(values))


@st.composite
def grants(draw: st.DrawFn, index: int) -> model.Grant:
    session = draw(st.sampled_from(["s1", "s2", None]))
    return model.Grant(
        index=index,
        users=draw(subset(USERS)),
        groups=draw(subset(GROUPS)),
        people=draw(subset(("p1", "p2"))),
        from_=draw(st.sampled_from([(), (ip_network("127.0.0.0/8"),)])),
        session=session,
        program=None if session else draw(st.sampled_from(["e1", "e2"])),
        mode=draw(st.sampled_from([model.READ_ONLY, model.READ_WRITE])),
        default=draw(st.booleans()),
        not_before=draw(st.sampled_from(WHEN[:2])),
        expires=draw(st.sampled_from([WHEN[0], WHEN[2]])),
    )


@st.composite
def policies(draw: st.DrawFn) -> model.Policy:
    count = draw(st.integers(0, 8))
    return model.Policy(
        people=PEOPLE,
        sessions={
            name: model.Session(name, f"/var/tmux/{name}", "alice", name) for name in ("s1", "s2")
        },
        programs={name: model.Program(name, ("/bin/true",)) for name in ("e1", "e2")},
        grants=tuple(draw(grants(i)) for i in range(count)),
        sha256="0" * 64,
        path="/etc/gatekeeper.toml",
    )


connections = st.builds(
    gkunit.connection,
    user=st.sampled_from((*USERS, "carol")),
    groups=subset(GROUPS),
    key_fingerprints=st.lists(st.sampled_from((*KEYS, f"SHA256:{'Z' * 43}")), max_size=2).map(
        tuple
    ),
    client_addr=st.sampled_from(["127.0.0.1", "10.0.0.1", None]),
    has_tty=st.booleans(),
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(policies(), connections, st.sampled_from(REQUESTS))
def test_the_connection_path_decides_as_with_the_whole_policy(
    full: model.Policy, connection: model.Connection, command: bytes
) -> None:
    """Only the grants naming the connection's account, groups or people are built per login."""
    data = policycache.encode(full, "f" * 64)
    assert policycache.decode(data, full.path, full.sha256, "f" * 64) == full
    pruned = policycache.decode(data, full.path, full.sha256, "f" * 64, connection)
    assert set(pruned.grants) <= set(full.grants)
    request = rq.parse(command or None)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert decide(connection, request, pruned, now) == decide(connection, request, full, now)


def test_a_large_policy_builds_only_the_connections_grants(place: Place) -> None:
    path = cached(place, many_grants(500))
    connection = gkunit.connection(user="u7", groups=frozenset({"u7"}))
    pruned = policycache.lookup(path, place.cache, relevant_to=connection)
    assert pruned is not None
    assert [g.index for g in pruned.grants] == [7]
    assert pruned.programs == policy.load(path).programs
