"""The man page generator (gatekeeper.manpages): roff safety and one source with --help/schema."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from gatekeeper import manpages
from gatekeeper.cli.main import parser
from gatekeeper.login import messages
from gatekeeper.policy.loader import json_schema

DATE = "2026-01-02"
MACROS = {'.\\"', ".TH", ".SH", ".SS", ".PP", ".TP", ".nf", ".fi", ".EX", ".EE"}


@dataclass(frozen=True)
class EscapeCase:
    text: str
    roff: str


ESCAPES = [
    EscapeCase("plain words", "plain words"),
    EscapeCase(".TH injected", "\\&.TH injected"),
    EscapeCase("'quote request", "\\&'quote request"),
    EscapeCase("a\n.SH x", "a\n\\&.SH x"),
    EscapeCase("back\\slash", "back\\eslash"),
    EscapeCase("the ``sink`` key", "the \\fBsink\\fR key"),
]


@pytest.mark.parametrize("case", ESCAPES, ids=[c.text for c in ESCAPES])
def test_escape(case: EscapeCase) -> None:
    assert manpages.escape(case.text) == case.roff


def test_pages_are_the_three_documented_ones_with_headers() -> None:
    pages = manpages.pages(DATE)
    assert set(pages) == {
        "man8/gatekeeper.8",
        "man8/gatekeeper-authorized-keys.8",
        "man8/gatekeeperctl.8",
        "man5/gatekeeper.toml.5",
    }
    for path, text in pages.items():
        name, section = path.split("/", 1)[1].rsplit(".", 1)
        assert f".TH {name.upper()} {section} {DATE} " in text
        assert ".SH NAME\n" in text
        assert ".SH SEE ALSO\n" in text
        # No line may start a roff request by accident: only our own macros start with '.'.
        for line in text.splitlines():
            if line.startswith((".", "'")):
                assert line.split(" ", 1)[0] in MACROS, line


def test_every_subcommand_and_option_is_in_gatekeeperctl_8() -> None:
    page = manpages.gatekeeperctl_page(DATE).replace("\\-", "-")
    for name, _summary, sub in manpages._subcommands(parser()):
        assert f".SS {name}\n" in page
        for option in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", sub.format_help())) - {"--help"}:
            assert option in page, (name, option)


def test_every_policy_key_is_in_gatekeeper_toml_5() -> None:
    page = manpages.policy_page(DATE).replace("\\-", "-")
    schema = json_schema()
    for header in ("[audit]", "[tmux]", "[people.NAME]", "[sessions.NAME]", "[programs.NAME]"):
        assert f".SH {header}\n" in page
    assert ".SH [[grant]]\n" in page
    for model in schema["$defs"].values():
        for key, prop in model["properties"].items():
            assert f"\\fB{key}\\fR = " in page, key
            first_words = manpages.escape(prop["description"]).split("\n")[0]
            assert first_words in page.replace("\\-", "-"), key


def test_every_guest_request_and_exit_code_is_in_gatekeeper_8() -> None:
    page = manpages.gatekeeper_page(DATE).replace("\\-", "-")
    help_lines = [line.strip() for line in messages.HELP.splitlines() if line.startswith("  ")]
    assert help_lines
    for line in help_lines:
        words = re.split(r"\s{2,}", line)[0]
        assert f"\\fB{words}\\fR" in page, words
    for code in (1, 64, 69, 70, 75, 78):
        assert f".TP\n{code}\n" in page


def test_main_writes_the_pages(tmp_path) -> None:
    assert manpages.main([str(tmp_path), "--date", DATE]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.[58]"))
    assert written == [
        "man5/gatekeeper.toml.5",
        "man8/gatekeeper-authorized-keys.8",
        "man8/gatekeeper.8",
        "man8/gatekeeperctl.8",
    ]
