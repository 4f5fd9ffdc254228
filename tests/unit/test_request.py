"""The guest's request language (SPEC §2) and every corpus parsing case."""

from __future__ import annotations

from typing import NamedTuple

import gkunit
import pytest

from gatekeeper.login import request as rq
from gatekeeper.login.decide import Deny, decide
from gatekeeper.policy.model import Grant, Policy, Program, Session


class Case(NamedTuple):
    id: str
    command: bytes | None
    expected: rq.Request


VERBS = [
    Case("no-command", None, rq.Default()),
    Case("empty-command", b"", rq.Default()),
    Case("only-spaces", b"   ", rq.Default()),
    Case("attach", b"attach shared", rq.Attach("shared")),
    Case("attach-extra-spaces", b"  attach   shared ", rq.Attach("shared")),
    Case("attach-64-char-name", b"attach " + b"a" * 64, rq.Attach("a" * 64)),
    Case("watch", b"watch shared", rq.Watch("shared")),
    Case("run", b"run editor", rq.Run("editor")),
    Case("list", b"list", rq.ListTargets(json=False)),
    Case("list-json", b"list --json", rq.ListTargets(json=True)),
    Case("whoami", b"whoami", rq.Whoami(json=False)),
    Case("whoami-json", b"whoami --json", rq.Whoami(json=True)),
    Case("help", b"help", rq.Help()),
    # Unknown: well-formed words, not a verb of ours (exit 1, "run 'list'").
    Case("shell", b"bash", rq.Unknown("bash")),
    Case("case-variant", b"Attach shared", rq.Unknown("Attach")),
    Case(
        "sftp-server", b"/usr/lib/openssh/sftp-server", rq.Unknown("/usr/lib/openssh/sftp-server")
    ),
    Case("exactly-1024-bytes", b"x" * 1024, rq.Unknown("x" * 1024)),
    # Malformed: not a sentence of the language (exit 64, "run 'help'").
    Case("attach-no-name", b"attach", rq.Malformed("bad_arguments")),
    Case("attach-two-names", b"attach a b", rq.Malformed("bad_arguments")),
    Case("watch-no-name", b"watch", rq.Malformed("bad_arguments")),
    Case("run-two-names", b"run editor x", rq.Malformed("bad_arguments")),
    Case("list-unknown-flag", b"list --yaml", rq.Malformed("bad_arguments")),
    Case("list-json-twice", b"list --json --json", rq.Malformed("bad_arguments")),
    Case("whoami-argument", b"whoami root", rq.Malformed("bad_arguments")),
    Case("help-argument", b"help me", rq.Malformed("bad_arguments")),
    Case("name-65-chars", b"attach " + b"a" * 65, rq.Malformed("bad_name")),
    Case("name-exact-prefix-syntax", b"attach =shared", rq.Malformed("bad_name")),
    Case("name-with-window", b"attach shared:1", rq.Malformed("bad_name")),
    Case("name-with-dot", b"run editor.sh", rq.Malformed("bad_name")),
    Case("name-with-slash", b"run /bin/sh", rq.Malformed("bad_name")),
    Case("tab", b"attach\tshared", rq.Malformed("not_printable_ascii")),
    Case("del", b"attach shared\x7f", rq.Malformed("not_printable_ascii")),
    Case("u2028", "attach\u2028shared".encode(), rq.Malformed("not_printable_ascii")),
    Case("bidi-override", "attach \u202edera".encode(), rq.Malformed("not_printable_ascii")),
    Case("nul", b"attach\x00shared", rq.Malformed("not_printable_ascii")),
    Case("double-quote", b'attach "shared"', rq.Malformed("metacharacter")),
    Case("backslash", b"attach sha\\red", rq.Malformed("metacharacter")),
    Case("glob", b"attach sha?ed", rq.Malformed("metacharacter")),
    Case("dollar", b"attach $HOME", rq.Malformed("metacharacter")),
    Case("invalid-utf8", b"attach \xc3", rq.Malformed("not_utf8")),
    Case("overlong-utf8", b"attach \xc0\xaf", rq.Malformed("not_utf8")),
    Case("1025-bytes", b"x" * 1025, rq.Malformed("too_long")),
    Case("too-long-wins-over-utf8", b"\xff" * 1025, rq.Malformed("too_long")),
]


@pytest.mark.parametrize("case", VERBS, ids=[c.id for c in VERBS])
def test_parse(case: Case) -> None:
    assert rq.parse(case.command) == case.expected


# --------------------------------------------------------------------- attack corpus

#: The corpus's own host: sessions shared, sharedsecret and admin all granted to
#: ``pair``, the editor program too, and ``shared`` is the default. So an
#: exit code below comes from the request, never from a missing grant.
CORPUS_POLICY = Policy(
    sessions={
        name: Session(name, f"/var/tmux/{name}.sock", "alice", name)
        for name in ("shared", "sharedsecret", "admin")
    },
    programs={"editor": Program("editor", ("/usr/bin/vim", "-Z", "--", "/my_project"))},
    grants=(
        Grant(0, users=frozenset({"pair"}), session="shared", default=True),
        Grant(1, users=frozenset({"pair"}), session="sharedsecret"),
        Grant(2, users=frozenset({"pair"}), session="admin"),
        Grant(3, users=frozenset({"pair"}), program="editor"),
    ),
)

NOT_ASCII = rq.Malformed("not_printable_ascii")
META = rq.Malformed("metacharacter")
BAD_NAME = rq.Malformed("bad_name")
TOO_LONG = rq.Malformed("too_long")
NOT_UTF8 = rq.Malformed("not_utf8")
SFTP = rq.Unknown("/usr/lib/openssh/sftp-server")


class CorpusCase(NamedTuple):
    id: str
    expected: rq.Request
    exit_code: int | None  # None: allowed


CORPUS_CASES = [
    CorpusCase("PARSE-01", META, 64),
    CorpusCase("PARSE-02", META, 64),
    CorpusCase("PARSE-04", META, 64),
    CorpusCase("PARSE-05", META, 64),
    CorpusCase("PARSE-07", NOT_ASCII, 64),
    CorpusCase("PARSE-08", META, 64),
    CorpusCase("PARSE-10", NOT_ASCII, 64),
    CorpusCase("PARSE-11", NOT_ASCII, 64),
    CorpusCase("PARSE-13", NOT_ASCII, 64),
    CorpusCase("PARSE-14", rq.Unknown("ATTACH"), 1),
    CorpusCase("PARSE-16", NOT_UTF8, 64),
    CorpusCase("PARSE-17", rq.Unknown("/usr/bin/tmux"), 1),
    CorpusCase("PARSE-19", TOO_LONG, 64),
    CorpusCase("PARSE-20", TOO_LONG, 64),
    # tmux target syntax: exact names only, so `adm` is not `admin`.
    CorpusCase("TMUX-01", rq.Attach("adm"), 1),
    CorpusCase("TMUX-02", META, 64),
    CorpusCase("TMUX-04", META, 64),
    CorpusCase("TMUX-05", BAD_NAME, 64),
    CorpusCase("TMUX-07", BAD_NAME, 64),
    CorpusCase("TMUX-08", BAD_NAME, 64),
    CorpusCase("TMUX-10", META, 64),
    CorpusCase("TMUX-11", META, 64),
    CorpusCase("TMUX-13", rq.Attach("shared"), None),
    CorpusCase("TMUX-19", rq.Attach("shared"), None),
    CorpusCase("VIM-01", META, 64),
    CorpusCase("VIM-02", META, 64),
    CorpusCase("VIM-08", rq.Unknown("vim"), 1),
    CorpusCase("VIM-10", rq.Unknown("vim"), 1),
    CorpusCase("VIM-11", META, 64),
    CorpusCase("SCP-01", rq.Unknown("scp"), 1),
    CorpusCase("SCP-02", META, 64),
    CorpusCase("RSYNC-02", rq.Unknown("rsync"), 1),
    CorpusCase("RSYNC-03", rq.Unknown("rsync"), 1),
    CorpusCase("SFTP-01", SFTP, 1),
    CorpusCase("SUB-01", SFTP, 1),
    CorpusCase("SUB-02", SFTP, 1),
    CorpusCase("SUB-04", rq.Unknown("scp"), 1),
    CorpusCase("SUB-05", rq.Default(), None),
    CorpusCase("SUB-07", rq.Unknown("internal-sftp"), 1),
    CorpusCase("SUB-08", SFTP, 1),
    CorpusCase("LOG-01", NOT_ASCII, 64),
    CorpusCase("LOG-03", NOT_ASCII, 64),
    CorpusCase("LOG-04", META, 64),
    CorpusCase("LOG-06", NOT_UTF8, 64),
    CorpusCase("LOG-07", TOO_LONG, 64),
    CorpusCase("LOG-08", NOT_ASCII, 64),
    CorpusCase("LOG-10", rq.Attach("shared"), None),
    CorpusCase("LOG-11", rq.Unknown("x"), 1),
    CorpusCase("OK-01", rq.Attach("shared"), None),
    CorpusCase("OK-02", rq.Default(), None),
]


@pytest.mark.parametrize("case", CORPUS_CASES, ids=[c.id for c in CORPUS_CASES])
def test_corpus_request(case: CorpusCase) -> None:
    entry = gkunit.corpus()[case.id]
    request = rq.parse(gkunit.corpus_command(entry))
    assert request == case.expected
    decision = decide(gkunit.connection(), request, CORPUS_POLICY, gkunit.NOW)
    code = decision.exit_code if isinstance(decision, Deny) else None
    assert code == case.exit_code
    if entry["expected"] == "deny":
        assert code is not None


def test_every_parsing_and_target_case_of_the_corpus_is_in_the_table() -> None:
    """A new corpus entry in these categories must get a row above."""
    wanted = {
        entry_id
        for entry_id, entry in gkunit.corpus().items()
        if entry["category"] in {"parsing", "tmux-target", "vim", "scp-rsync", "subsystem"}
        and entry["vector"].get("original_command") is not None
        and "keys" not in entry["vector"]
        and "env" not in entry["vector"]
        and "setup" not in entry["vector"]
    }
    assert wanted <= {c.id for c in CORPUS_CASES}


def test_corpus_loader_reads_byte_exact_vectors() -> None:
    entries = gkunit.corpus()
    assert gkunit.corpus_command(entries["PARSE-16"]) == b"attach caf\xc3\xa9 \xff\xfe"
    assert gkunit.corpus_command(entries["LOG-07"]) == b"A" * 120000
    assert gkunit.corpus_command(entries["SUB-05"]) is None
