"""Waiting by polling with a deadline - the only way the harness synchronises."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """``probe`` stayed falsy until the deadline (an AssertionError: a failed test)."""


def wait_until(
    probe: Callable[[], T | bool | None], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy and return that; fail after ``timeout``.

    The interval starts at 10 ms and doubles up to 200 ms: quick for what is
    quick, cheap for what is slow.
    """
    deadline = time.monotonic() + timeout
    interval = 0.01
    while True:
        value = probe()
        if value:
            return value  # type: ignore[return-value]  # truthy, so not False/None: a T
        if time.monotonic() > deadline:
            raise WaitTimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # polling interval, not synchronisation
        interval = min(interval * 2, 0.2)
