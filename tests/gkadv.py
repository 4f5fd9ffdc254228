"""State and helpers of the adversarial tier, importable by its conftest and its tests.

The registry below is filled by ``conftest.pytest_collection_modifyitems`` for
the whole session and read by ``test_coverage.py`` and the terminal summary.
"""

from __future__ import annotations

from pathlib import Path

ADVERSARIAL_DIR = Path(__file__).resolve().parent / "adversarial"

#: corpus id -> node ids of the collected tests marked with it (whole session).
COVERED: dict[str, set[str]] = {}
#: node id -> "passed" | "failed" | "skipped" for tests that carry the marker.
OUTCOMES: dict[str, str] = {}
#: node id -> the corpus ids on it.
MARKED: dict[str, tuple[str, ...]] = {}
#: The adversarial test modules that were collected (a partial run cannot judge coverage).
COLLECTED_MODULES: set[str] = set()
#: corpus id -> the tiers whose tests show it ("unit", "integration", "e2e").
TIERS: dict[str, set[str]] = {}
#: module file name -> tier.
MODULE_TIERS = {
    "test_unit_connect.py": "unit",
    "test_fuzz.py": "unit",
    "test_integration_tmux.py": "integration",
    "test_e2e_sshd.py": "e2e",
}
