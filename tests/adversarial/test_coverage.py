"""Every attack-corpus id has a test: no case may go silently missing."""

from __future__ import annotations

from pathlib import Path

import gkadv as adv
import gktest
import gkunit

#: Corpus ids without a test yet, each with the reason. Keep it empty; an id
#: listed here is a known gap the lead has agreed to, and the test below
#: fails when an id here gains a test (so the list cannot go stale).
NOT_YET_COVERED: dict[str, str] = {}


def _modules_on_disk() -> set[str]:
    return {p.name for p in Path(adv.ADVERSARIAL_DIR).glob("test_*.py")}


def test_the_corpus_is_present_and_well_formed() -> None:
    entries = gkunit.corpus()
    assert len(entries) >= 85
    for corpus_id, entry in entries.items():
        assert entry["expected"], corpus_id
        assert "vector" in entry, corpus_id


def test_every_corpus_id_is_covered() -> None:
    gktest.require(
        _modules_on_disk() <= adv.COLLECTED_MODULES,
        "the whole tests/adversarial directory in this run (coverage needs every module)",
    )
    ids = set(gkunit.corpus())
    covered = set(adv.COVERED)
    unknown = covered - ids
    assert not unknown, f"tests mark ids that are not in the corpus: {sorted(unknown)}"
    missing = ids - covered - set(NOT_YET_COVERED)
    assert not missing, f"corpus ids without a test: {sorted(missing)}"
    stale = set(NOT_YET_COVERED) & covered
    assert not stale, f"NOT_YET_COVERED lists ids that now have tests: {sorted(stale)}"
