"""Fixtures of the process-language suites.

* ``h``: a ``ProcessHarness`` on the memory store, its virtual clock at a
  fixed time (``support.START``) so times in assertions are exact. The
  expression suites override it with a harness that has stock tracers and
  holders registered (``support.make``).
* ``hx``: the same on every store of the ``store`` fixture (memory, the
  embedded Valkey, the machine's Redis), for tests that must hold on all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.store import RunStore
from engine.testing import ProcessHarness
from tests.engine.support import make


@pytest.fixture
def h() -> Iterator[ProcessHarness]:
    with make(registered=False) as harness:
        yield harness


@pytest.fixture
def hx(store: RunStore) -> Iterator[ProcessHarness]:
    """The same tests against the memory store and Redis/Valkey."""
    with make(store=store, registered=False) as harness:
        yield harness
