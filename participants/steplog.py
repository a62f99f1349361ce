"""Step logs: what a handler logs and prints while it works on a workitem.

The runtime gives each job a ``StepLog`` and the handler's thread attaches
it (``attach``/``detach``) for the length of ``handle_wi``. Two hooks,
installed once per process (``install``) and harmless to every other thread:

* ``logging``'s record factory, wrapped: a record made *in a thread with a
  step log attached* (it passed its logger's level) becomes a line
  (``name: message``, with its traceback), at its level name; the
  process's handlers and ``basicConfig`` are left alone;
* ``sys.stdout`` and ``sys.stderr`` wrapped in a proxy that passes every
  write through unchanged and, from such a thread, also cuts it into lines
  (``stdout``/``stderr``). Writes made by logging's own stream handlers are
  not taken twice.

So two jobs' lines never mix (each thread has its own), and the
participant's own stderr (the supervisor log) keeps everything as before.
What a handler's subprocesses write to the file descriptors, or other
threads it starts, is not captured.

The main thread, which owns the broker connection, takes the lines in
numbered batches (``take``: when ``due``, at most one per ``interval``
seconds unless ``batch_lines`` lines wait, so a lone line goes at once and a
burst in a few batches; and a last one when the job ends, before the reply)
and publishes them to ``<engine_queue>.logs`` (``engine.store.steplogs``
says what is done with them). A job sends at most ``max_lines`` lines and
``max_bytes`` characters: the first line over is replaced by a ``boss``
line saying so, and the last batch says how many were not sent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["StepLog", "attach", "detach", "install"]

#: the least seconds between two batches of one job (unless BATCH_LINES wait)
INTERVAL = 0.5
#: lines that make a batch due before ``INTERVAL``
BATCH_LINES = 200
#: characters kept of one line
MAX_LINE = 16_384

_captures: dict[int, StepLog] = {}
_installed = threading.Lock()
_LOGGING_FILE = logging.__file__


class StepLog:
    """The captured lines of one job, and the batches made of them."""

    def __init__(
        self,
        *,
        wfid: str,
        expid: str,
        participant: str,
        job: str,
        max_lines: int = 10_000,
        max_bytes: int = 1 << 20,
        interval: float = INTERVAL,
        batch_lines: int = BATCH_LINES,
    ) -> None:
        self.wfid = wfid
        self.expid = expid
        self.participant = participant
        self.job = job
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.interval = interval
        self.batch_lines = batch_lines
        self._lock = threading.Lock()
        self._lines: list[list[str]] = []
        self._sent_at = 0.0
        self._partial: dict[str, str] = {}
        self.lines = 0
        self.chars = 0
        self.dropped = 0
        self.dropped_chars = 0
        self.seq = 0
        self.finished = False
        #: batches made and not yet published (the runtime takes them off
        #: once the broker has them: a lost connection keeps them)
        self.outbox: list[bytes] = []

    # -- the handler's thread -------------------------------------------------------------

    def add(self, level: str, text: str) -> None:
        """One line at ``level`` (a log record: its text may span lines,
        a traceback stays with its message)."""
        now = f"{time.time():.6f}"
        with self._lock:
            self._add(now, level, text)

    def _add(self, now: str, level: str, text: str) -> None:
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + f" [... {len(text) - MAX_LINE} characters cut]"
        over = self.lines + 1 > self.max_lines or self.chars + len(text) > self.max_bytes
        if self.dropped or over:
            if not self.dropped:
                self._push(
                    now,
                    "boss",
                    f"the participant stopped sending the log of step {self.expid} at its bound "
                    f"({self.max_lines} lines or {self.max_bytes} bytes)",
                )
            self.dropped += 1
            self.dropped_chars += len(text)
            return
        self.lines += 1
        self.chars += len(text)
        self._push(now, level, text)

    def _push(self, now: str, level: str, text: str) -> None:
        self._lines.append([now, level, text])

    def write(self, stream: str, text: str) -> None:
        """What was written to ``stream`` (``stdout``/``stderr``): whole
        lines now, the rest when its line ends (or at ``close``)."""
        if not text:
            return
        with self._lock:
            if "\n" not in text:  # print writes its parts one by one
                self._partial[stream] = self._partial.get(stream, "") + text
                return
            text = self._partial.pop(stream, "") + text
            *whole, rest = text.split("\n")
            if rest:
                self._partial[stream] = rest
            if whole:
                now = f"{time.time():.6f}"
                for part in whole:
                    self._add(now, stream, part.rstrip("\r"))

    def close(self) -> None:
        """The job's end: the unfinished lines of print become lines."""
        with self._lock:
            partial, self._partial = self._partial, {}
            now = f"{time.time():.6f}"
            for stream, rest in partial.items():
                self._add(now, stream, rest)

    # -- the main thread ------------------------------------------------------------------

    def due(self) -> bool:
        """Whether a batch should go now: lines wait, and the last batch went
        ``interval`` seconds ago or more (a line after a quiet spell goes at
        once, a burst every ``interval``), or ``batch_lines`` of them wait."""
        with self._lock:
            return bool(self._lines) and (
                len(self._lines) >= self.batch_lines
                or time.monotonic() - self._sent_at >= self.interval
            )

    def take(self, *, final: bool = False) -> bytes | None:
        """Move the waiting lines into a batch on ``outbox`` (and return it);
        ``final``: the job's last (once; after ``close``). None when there is
        nothing to send: no lines, or (final) a job that never sent any."""
        with self._lock:
            if self.finished:
                return None
            lines, self._lines = self._lines, []
            if final:
                self.finished = True
                if self.dropped:
                    lines.append(
                        [
                            f"{time.time():.6f}",
                            "boss",
                            f"{self.dropped} more lines ({self.dropped_chars} characters) of "
                            "this step were not sent",
                        ]
                    )
                if not lines and self.seq == 0:
                    return None
            elif not lines:
                return None
            batch = {
                "wfid": self.wfid,
                "step": self.expid,
                "participant": self.participant,
                "job": self.job,
                "seq": self.seq,
                "final": final,
                "lines": lines,
            }
            self.seq += 1
            self._sent_at = time.monotonic()
            body = json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8", "replace"
            )
            self.outbox.append(body)
            return body


# -- the hooks ------------------------------------------------------------------------------


_FORMAT = logging.Formatter("%(name)s: %(message)s")
_previous_factory: Callable[..., logging.LogRecord] | None = None


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """``logging``'s record factory, wrapped: a record made in a thread with
    a step log attached (it passed its logger's level) becomes a line."""
    assert _previous_factory is not None
    record = _previous_factory(*args, **kwargs)
    cap = _captures.get(threading.get_ident())
    if cap is not None:
        # a bad format string is the caller's problem (its handlers say so), not ours
        with contextlib.suppress(Exception):
            cap.add(record.levelname, _FORMAT.format(record))
    return record


class _Tee:
    """``sys.stdout``/``sys.stderr``: everything goes through; the writes of
    a thread with a step log attached are also its lines."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name

    def write(self, text: str) -> int:
        cap = _captures.get(threading.get_ident())
        if cap is not None and sys._getframe(1).f_code.co_filename != _LOGGING_FILE:
            cap.write(self._name, text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install() -> None:
    """Install the hooks (idempotent; a ``sys.stdout`` replaced since, as
    pytest does, is wrapped again). The logging hook is a record factory,
    not a handler: it changes nothing of the process's logging set-up
    (``basicConfig`` still works after it)."""
    global _previous_factory
    with _installed:
        if _previous_factory is None:
            _previous_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_record_factory)
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = _Tee(sys.stdout, "stdout")  # type: ignore[assignment]
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = _Tee(sys.stderr, "stderr")  # type: ignore[assignment]


def attach(steplog: StepLog) -> None:
    """Capture the calling thread's lines into ``steplog``."""
    _captures[threading.get_ident()] = steplog


def detach() -> None:
    """Stop capturing the calling thread's lines."""
    _captures.pop(threading.get_ident(), None)
