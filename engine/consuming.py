"""A kombu consumer that takes its deliveries in batches: wait for one,
then take what else the broker has already delivered without waiting (up to
``batch``; ``linger`` seconds more for a fuller batch, when set), and hand
them over together (``on_batch``). Under load a batch fills from what
arrived while the last one was handled; at low load a lone message is
handled at once, never held back for company.

The engine's consumer threads (``engine.worker``) and the trace
aggregator's consumers (``engine.trace.aggregator``) are built on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kombu.mixins import ConsumerMixin

__all__ = ["BatchConsumer"]


class BatchConsumer(ConsumerMixin):
    """kombu's ``ConsumerMixin`` with ``consume`` taking batches. A
    subclass's consumers call ``keep(item)`` for each delivery (the item
    is what ``on_batch`` gets: the message, or the message with where it
    came from) and implement ``on_batch(taken)``."""

    #: the most deliveries handed over together
    batch: int = 1
    #: seconds to wait for more after the first of a batch (0: none)
    linger: float = 0.0

    @property
    def pending(self) -> list[Any]:
        """Deliveries taken and not handed over yet."""
        try:
            return self._batch_pending
        except AttributeError:
            self._batch_pending: list[Any] = []
            return self._batch_pending

    def keep(self, item: Any) -> None:
        self.pending.append(item)

    def on_batch(self, taken: list[Any]) -> None:
        raise NotImplementedError

    def consume(
        self, limit: int | None = None, timeout: float | None = None, safety_interval: float = 1
    ) -> Iterator[None]:
        # deliveries of a lost connection are void (cleared before the
        # consumers are declared: the first deliveries may come while the
        # next consumer is being declared)
        self.pending.clear()
        with self.consumer_context() as (conn, _channel, _consumers):
            while not self.should_stop:
                if not self.pending:  # (some may be in hand already)
                    try:
                        self.wait(conn, safety_interval)
                    except TimeoutError:
                        conn.heartbeat_check()
                        continue
                    except OSError:
                        if self.should_stop:
                            break
                        raise
                self._fill(conn)
                if self.pending:
                    taken, self._batch_pending = self._batch_pending, []
                    self.on_batch(taken)
                yield
            self.on_stop()

    def wait(self, conn: Any, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for deliveries (``TimeoutError``
        when none came). A subclass may wait for other things too."""
        conn.drain_events(timeout=timeout)

    def on_stop(self) -> None:
        """Called when asked to stop, before the consumers are cancelled."""

    def _fill(self, conn: Any) -> None:
        """Take what has arrived, without waiting (or for up to ``linger``)."""
        until = time.monotonic() + self.linger
        while len(self.pending) < self.batch:
            wait = max(0.0, until - time.monotonic())
            try:
                conn.drain_events(timeout=wait)
            except TimeoutError:
                if wait <= 0:
                    return
