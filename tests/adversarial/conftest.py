"""The adversarial tier: every attack-corpus case as a test, and the coverage report.

The corpus (``tests/data/attack-corpus.jsonl``, in the repository) is the list of
concrete attacks a safe deployment must survive. Each test that shows one is
marked ``@pytest.mark.corpus("ID", ...)``; this plugin

* registers the marker (``--strict-markers`` is on);
* remembers, for the whole session, which corpus ids have a collected test
  (before ``-k``/``-m`` deselection, so a filtered run does not lie about
  coverage) - ``test_every_corpus_id_is_covered`` fails on a gap;
* counts the outcomes of marked tests and prints one summary line:
  ``attack corpus: N/85 ids covered, P passing, F failing``.

Fixtures here are the tier's own (module or session scoped, unique names,
everything started is stopped by PID): a unit policy directory, an
``environ`` builder, and the real tmux and sshd deployments the integration
and end-to-end modules share.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gktest
import gkunit
import pytest
from gkadv import (
    ADVERSARIAL_DIR,
    COLLECTED_MODULES,
    COVERED,
    MARKED,
    MODULE_TIERS,
    OUTCOMES,
    TIERS,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "corpus(*ids): the attack-corpus cases (tests/data/attack-corpus.jsonl) this test shows",
    )


def corpus_ids(item: pytest.Item) -> tuple[str, ...]:
    return tuple(i for mark in item.iter_markers("corpus") for i in mark.args)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Record coverage before any deselection (``tryfirst``: ahead of ``-k``/``-m``)."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.parent == ADVERSARIAL_DIR:
            COLLECTED_MODULES.add(path.name)
        ids = corpus_ids(item)
        if not ids:
            continue
        MARKED[item.nodeid] = ids
        tier = MODULE_TIERS.get(path.name, "other")
        for corpus_id in ids:
            COVERED.setdefault(corpus_id, set()).add(item.nodeid)
            TIERS.setdefault(corpus_id, set()).add(tier)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in MARKED:
        return
    if report.failed:
        OUTCOMES[report.nodeid] = "failed"
    elif report.skipped and OUTCOMES.get(report.nodeid) != "failed":
        OUTCOMES[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and report.nodeid not in OUTCOMES:
        OUTCOMES[report.nodeid] = "passed"


def corpus_summary() -> tuple[int, int, int, int]:
    """``(covered, total, passing, failing)`` over corpus ids.

    An id is passing when every marked test that ran for it passed (and at
    least one did), failing when any of them failed.
    """
    try:
        total = len(gkunit.corpus())
    except FileNotFoundError:
        total = 0
    passing = failing = 0
    for nodeids in COVERED.values():
        results = [OUTCOMES[n] for n in nodeids if n in OUTCOMES]
        if "failed" in results:
            failing += 1
        elif results and all(r == "passed" for r in results):
            passing += 1
    return len(COVERED), total, passing, failing


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not MARKED or terminalreporter.config.option.collectonly:
        return
    covered, total, passing, failing = corpus_summary()
    terminalreporter.write_line(
        f"attack corpus: {covered}/{total} ids covered, {passing} passing, {failing} failing"
    )
    by_tier = {
        t: sum(t in tiers for tiers in TIERS.values()) for t in ("unit", "integration", "e2e")
    }
    terminalreporter.write_line(
        "attack corpus by tier (an id may be shown at several): "
        + ", ".join(f"{tier} {count}" for tier, count in by_tier.items())
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def corpus() -> dict[str, dict[str, object]]:
    """Every corpus entry by id (a missing corpus is an error, never a skip)."""
    return gkunit.corpus()


@pytest.fixture
def policy_dir() -> Iterator[gkunit.PolicyDir]:
    """A root-owned 0755 directory under /tmp with a file-sink policy (unit tier)."""
    yield from gkunit.policy_dir()


@pytest.fixture
def adv_dir() -> Iterator[Path]:
    """A root-owned, world-traversable scratch directory for one test."""
    import shutil  # noqa: PLC0415 - fixture-local

    path = gktest.shared_dir("gk-adv-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
