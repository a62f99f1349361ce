"""JSON text on the hot path: compact UTF-8, written and read by orjson.

The engine writes a run's state to the store and a workitem to the broker
for every step, and reads them back; with the standard library's ``json``
that was an eighth of the engine consumer's time at full load
(``docs/benchmarks.md``, issue 19's seventh slice). orjson (a dependency
already, for the trace graph) does the same in a third of the time. Where
orjson would give a different answer than ``json``, these functions give
``json``'s:

* ``dumps``: what orjson refuses (an integer beyond 64 bits, a datetime, a
  dataclass, a set, a lone surrogate...) goes to ``json``, which writes it
  or raises as before (``TypeError``, ``ValueError``). Two differences
  remain, both towards valid JSON: a float NaN or infinity is written as
  ``null`` (``json`` writes ``NaN``, which is not JSON), and a
  ``uuid.UUID`` or a plain ``enum.Enum`` is written as its text or value
  (``json`` raises).
* ``loads``: what orjson refuses (``NaN``, a lone surrogate escape, a
  float out of range...) is read by ``json``, which reads it or raises
  ``json.JSONDecodeError`` as before; text with a run of 19 digits or more
  is read by ``json`` too, since orjson reads an integer beyond 64 bits as
  a float and loses its digits (the check costs about 6 µs for 8 kB, the
  parse then 14 µs against ``json``'s 37).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "dumps_text", "loads"]

#: datetimes and dataclasses go to ``json`` (which refuses them, as before)
_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
#: one encoder, built once (``json.dumps`` builds one per call for
#: non-default arguments); what refers to itself raises ``ValueError``
_json_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: a run of 19 digits (``bytes.translate`` and ``find``: a regular
#: expression takes seven times orjson's whole parse): a number orjson may
#: read as a float, an integer beyond 64 bits
_DIGITS = bytes(1 if 0x30 <= b <= 0x39 else 0 for b in range(256))
_LONG_RUN = b"\x01" * 19


def dumps(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON text (``json.dumps(obj,
    separators=(",", ":"), ensure_ascii=False).encode()``)."""
    try:
        return orjson.dumps(obj, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return _json_dumps(obj).encode()


def dumps_text(obj: Any) -> str:
    """``dumps`` as ``str``."""
    try:
        return orjson.dumps(obj, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return _json_dumps(obj)


def loads(text: str | bytes | bytearray) -> Any:
    """The value of JSON ``text`` (``json.loads``)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if isinstance(data, bytes | bytearray) and data.translate(_DIGITS).find(_LONG_RUN) < 0:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
