"""Waiting on a condition with a deadline: the only way tests wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.05
) -> T:
    """``predicate()``'s first truthy value, polling until ``timeout``
    seconds have passed (then AssertionError naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for "
                f"{what or getattr(predicate, '__name__', 'a condition')}"
            )
        time.sleep(interval)
