"""The traceability graph store: Eiffel events and their links in Redis or
Valkey.

Direction vocabulary
--------------------

An Eiffel link points from the newer event to an older target (a test
result links to the artifact it tested, the artifact to the composition it
was built from). In this module:

* **upstream** of X = what X links to, transitively: its causes, what it
  was built from (``upstream`` follows the links an event has);
* **downstream** of X = the events that link to X, transitively: what was
  built from it, what tested it (``downstream`` follows the reverse links).

So "trace up" from a source change (which artifacts and confidence levels
contain it, ``queries.trace_up``) walks *downstream*, and "trace down" from
an artifact or baseline (what went into it, ``queries.trace_down``) walks
*upstream*.

Key layout
----------

Every key starts with ``prefix`` (default ``"boss:"``)::

    e:<id>          string: the node (below)
    t:<type>        zset id -> meta.time: the time index of one event type
    x:<type>:<field>:<value>
                    zset id -> meta.time: the lookup index (INDEX_FIELDS)
    c:<root>        list: the events of a chain, other than its root
    waiting         hash id -> number of its link targets not stored yet
    placeholders    set: ids linked to but not stored yet
    stats           hash: events (how many are stored)
    warnings        hash id -> JSON list of the link rules an imported event
                    breaks ({"rule", "message", "path"}; ``add_warnings``)

A node is one string, its lines separated by ``\\n``::

    <meta.type>
    <chain parent id, or empty for a chain root>
    <out links: TYPE=target,TYPE=target>
    <in links: TYPE=source,TYPE=source,>      (appended as events arrive)
    <the event as compact JSON, less meta.id, meta.type and links>

One key per event keeps memory low (a key costs about 90 bytes of overhead;
the in-links live in the node rather than in a set per event). A
**placeholder** is a node with an empty type and body (``"\\n\\n\\n<in>\\n"``):
a link target that has not arrived yet. It carries the reverse links of the
events that wait on it, so when the target arrives it is stored with them,
and every event that waited on it (the ``waiting`` hash) counts one target
less; at zero it is resolved.

The **chain** of an event is the root activity it hangs under: its chain
parent is the target of its CONTEXT link, else of its ACTIVITY_EXECUTION,
TEST_CASE_EXECUTION or TEST_SUITE_EXECUTION link; an event with none of
these (a run's ActivityTriggered, a source change, an artifact built outside
a run) is the root of its own chain. ``chain(id)`` lists a run's events, to
export its subgraph. While a parent has not arrived, the events under it
are listed under the parent's id and moved to the real root when it comes.

Round trips: ``ingest`` sends one ``EVALSHA`` per batch (500 events by
default) and keeps one batch in flight while it encodes the next;
``upstream``/``downstream`` are one ``EVALSHA`` (a breadth-first walk on the
server); ``get`` is one GET. The scripts live beside this module as
``engine/trace/graph_*.lua``. They touch keys computed from the prefix, so on
Redis Cluster give the prefix a hash tag (``"{boss}:"``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any, NamedTuple

import redis

__all__ = [
    "CHAIN_LINKS",
    "INDEX_FIELDS",
    "Graph",
    "Hit",
    "IngestResult",
    "event_type",
]

try:  # orjson: a third of the client's time per event in ingest and in walks
    import orjson

    def _dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency; this is a fallback
    _dumps = json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), check_circular=False
    ).encode
    _loads = json.loads
_LINK = re.compile(r"([^,=]+)=([^,]+)")  # one "TYPE=id" item of a links line

#: the order of an activity's own events at the same millisecond, in ``chain``
_CHAIN_RANK = {
    "EiffelActivityTriggeredEvent": 0,
    "EiffelActivityStartedEvent": 1,
    "EiffelActivityFinishedEvent": 3,
    "EiffelActivityCanceledEvent": 3,
}

#: the link types that make an event's chain parent, in order of preference
CHAIN_LINKS = ("CONTEXT", "ACTIVITY_EXECUTION", "TEST_CASE_EXECUTION", "TEST_SUITE_EXECUTION")

#: the data fields indexed for ``Graph.find`` (dotted paths into ``data``)
INDEX_FIELDS: dict[str, tuple[str, ...]] = {
    "EiffelSourceChangeCreatedEvent": ("gitIdentifier.commitId", "hgIdentifier.commitId"),
    "EiffelSourceChangeSubmittedEvent": ("gitIdentifier.commitId", "hgIdentifier.commitId"),
    "EiffelArtifactCreatedEvent": ("identity",),
    "EiffelCompositionDefinedEvent": ("name",),
    "EiffelConfidenceLevelModifiedEvent": ("name",),
    "EiffelIssueDefinedEvent": ("id",),
    "EiffelEnvironmentDefinedEvent": ("name",),
}

_DEFAULT_DEPTH = 10
_DEFAULT_LIMIT = 100
_MAX_VISITS = 20_000


@functools.cache
def _script(name: str) -> str:
    return resources.files("engine.trace").joinpath(f"{name}.lua").read_text(encoding="utf-8")


def event_type(name: str) -> str:
    """The full Eiffel type name: ``"ArtifactCreated"`` and
    ``"EiffelArtifactCreatedEvent"`` both give the latter."""
    if name.startswith("Eiffel") and name.endswith("Event"):
        return name
    return f"Eiffel{name}Event"


def _types_arg(values: str | Iterable[str] | None, normalise: bool = False) -> str:
    """``",A,B,"`` for the walk script (``""``: no filter)."""
    if values is None:
        return ""
    if isinstance(values, str):
        values = [values]
    names = [event_type(v) if normalise else v for v in values]
    return "," + ",".join(names) + "," if names else ","


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class IngestResult:
    """What one ``ingest`` did.

    * ``stored``: events stored (new ids);
    * ``duplicates``: events skipped because their id was already stored;
    * ``waiting``: events stored with at least one link target not stored yet;
    * ``placeholders``: placeholder nodes created for such targets;
    * ``resolved``: waiting events (of any earlier batch or this one) whose
      last missing target arrived.
    """

    stored: int = 0
    duplicates: int = 0
    waiting: int = 0
    placeholders: int = 0
    resolved: int = 0

    def __iadd__(self, other: IngestResult) -> IngestResult:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Hit(NamedTuple):
    """One event a walk reached: the event, its distance in links from the
    start and the type of the link it was first reached by."""

    event: dict[str, Any]
    depth: int
    via: str


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


class Graph:
    """The traceability graph on a redis-py client (see the module
    docstring). ``index_fields`` replaces ``INDEX_FIELDS``."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "boss:",
        *,
        index_fields: Mapping[str, Iterable[str]] | None = None,
        batch_size: int = 500,
    ) -> None:
        self._redis = client
        self.prefix = prefix
        self.batch_size = batch_size
        self.index_fields = {
            event_type(k): tuple(v)
            for k, v in (INDEX_FIELDS if index_fields is None else index_fields).items()
        }
        self._k_event = f"{prefix}e:"
        self._k_type = f"{prefix}t:"
        self._k_index = f"{prefix}x:"
        self._k_chain = f"{prefix}c:"
        self._k_waiting = f"{prefix}waiting"
        self._k_placeholders = f"{prefix}placeholders"
        self._k_stats = f"{prefix}stats"
        self._k_warnings = f"{prefix}warnings"
        self._ingest_src = _script("graph_ingest")
        self._loaded = False
        reg = client.register_script
        self._ingest = reg(self._ingest_src)
        self._walk = reg(_script("graph_walk"))
        self._chain = reg(_script("graph_chain"))

    @property
    def client(self) -> redis.Redis:
        """The redis-py client."""
        return self._redis

    def __repr__(self) -> str:
        return f"<Graph {self._redis!r} prefix={self.prefix!r}>"

    # -- ingest -----------------------------------------------------------
    def _encode(self, event: Mapping[str, Any], args: list[Any]) -> None:
        """Append the script arguments for one event to ``args``."""
        try:
            meta = event["meta"]
            eid = meta["id"]
            etype = meta["type"]
            time = int(meta["time"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not an Eiffel event (meta.id, meta.type, meta.time): {exc}"
            ) from None
        if not eid or any(c in eid for c in ",=\n") or "\n" in etype or not etype:
            raise ValueError(f"unusable event id or type: {eid!r} {etype!r}")
        links = event.get("links") or ()
        out = []
        parent = ""
        rank = len(CHAIN_LINKS)
        keep_links = False
        for link in links:
            ltype, target = link["type"], link["target"]
            if target == eid or any(c in target for c in ",=\n") or any(c in ltype for c in ",=\n"):
                raise ValueError(f"unusable link {link!r} in event {eid}")
            out.append(f"{ltype}={target}")
            if ltype in CHAIN_LINKS and CHAIN_LINKS.index(ltype) < rank:
                rank = CHAIN_LINKS.index(ltype)
                parent = target
            if len(link) > 2:  # domainId or another extra: keep the links as given
                keep_links = True
        body: dict[str, Any] = {
            "meta": {k: v for k, v in meta.items() if k != "id" and k != "type"}
        }
        for key, value in event.items():
            if key != "meta" and (key != "links" or keep_links):
                body[key] = value
        index = ""
        paths = self.index_fields.get(etype)
        if paths:
            data = event.get("data")
            keys = []
            for path in paths:
                value = _lookup(data, path)
                if isinstance(value, str | int) and "\n" not in str(value):
                    keys.append(f"{etype}:{path}:{value}")
            index = "\n".join(keys)
        args += (eid, time, index, f"{etype}\n{parent}\n{','.join(out)}\n\n{_dumps(body)}")

    def _batches(self, events: Iterable[Mapping[str, Any]]) -> Iterator[list[Any]]:
        args: list[Any] = [self.prefix]
        n = 0
        for event in events:
            self._encode(event, args)
            n += 1
            if n >= self.batch_size:
                yield args
                args = [self.prefix]
                n = 0
        if n:
            yield args

    def ingest(self, events: Iterable[Mapping[str, Any]]) -> IngestResult:
        """Store ``events`` (Eiffel events as dicts, already validated), in
        batches of ``batch_size`` (one script call each, one batch in
        flight while the next is encoded). An id already stored is skipped
        (counted as a duplicate), so ingesting again is harmless; links to
        events not stored yet make placeholders, resolved when they arrive.
        Events may come in any order."""
        result = IngestResult()
        sha = self._ingest.sha
        if not self._loaded:
            self._redis.script_load(self._ingest_src)
            self._loaded = True
        pool = self._redis.connection_pool
        conn = pool.get_connection()
        in_flight: list[Any] | None = None
        try:
            for args in self._batches(events):
                conn.send_command("EVALSHA", sha, 0, *args)
                if in_flight is not None:
                    result += self._reply(conn, in_flight)
                in_flight = args
            if in_flight is not None:
                result += self._reply(conn, in_flight)
        except BaseException:
            conn.disconnect()  # replies may be pending: never reuse it
            raise
        finally:
            pool.release(conn)
        return result

    def _reply(self, conn: Any, args: list[Any]) -> IngestResult:
        try:
            reply = conn.read_response()
        except redis.exceptions.NoScriptError:
            # a restarted or flushed server: load the script and run this
            # batch again (the batch sent after it fails too, and is retried
            # in its turn; ingesting is idempotent anyway)
            self._redis.script_load(self._ingest_src)
            reply = self._redis.evalsha(self._ingest.sha, 0, *args)
        return IngestResult(*(int(x) for x in reply))

    def ingest_one(self, event: Mapping[str, Any]) -> IngestResult:
        """Store one event (see ``ingest``)."""
        args: list[Any] = [self.prefix]
        self._encode(event, args)
        return IngestResult(*(int(x) for x in self._ingest(args=args)))

    # -- reading ----------------------------------------------------------
    def _decode(self, eid: str, value: bytes | str) -> dict[str, Any] | None:
        """The event in a node value (None for a placeholder)."""
        if isinstance(value, str):
            value = value.encode()
        etype, _parent, out, _in, body = value.split(b"\n", 4)
        if not etype:
            return None
        stored = _loads(body)
        event: dict[str, Any] = {"meta": {"id": eid, "type": etype.decode(), **stored.pop("meta")}}
        event["data"] = stored.pop("data", {})
        if "links" not in stored:
            event["links"] = [
                {"type": t, "target": target} for t, target in _LINK.findall(out.decode())
            ]
        if stored:
            event.update(stored)
        return event

    def get(self, eid: str) -> dict[str, Any] | None:
        """The event stored under ``eid`` (None if absent or a placeholder)."""
        value = self._redis.get(self._k_event + eid)
        return None if value is None else self._decode(eid, value)

    def get_many(self, ids: Iterable[str]) -> list[dict[str, Any] | None]:
        """The events stored under ``ids``, in order (None where absent)."""
        ids = list(ids)
        if not ids:
            return []
        values = self._redis.mget([self._k_event + i for i in ids])
        return [None if v is None else self._decode(i, v) for i, v in zip(ids, values, strict=True)]

    def exists(self, eid: str) -> bool:
        """True when the event is stored (a placeholder is not)."""
        head = self._redis.getrange(self._k_event + eid, 0, 0)
        return bool(head) and head not in (b"\n", "\n")

    def _node(self, eid: str) -> list[str] | None:
        value = self._redis.get(self._k_event + eid)
        return None if value is None else _text(value).split("\n", 4)

    def links_out(
        self, eid: str, types: str | Iterable[str] | None = None
    ) -> list[tuple[str, str]]:
        """The links of ``eid`` as (link type, target), in the event's order,
        only of ``types`` when given."""
        node = self._node(eid)
        if node is None:
            return []
        return _filter(_parse(node[2]), types)

    def links_in(self, eid: str, types: str | Iterable[str] | None = None) -> list[tuple[str, str]]:
        """The links to ``eid`` as (link type, source), in arrival order,
        only of ``types`` when given (works on placeholders too)."""
        node = self._node(eid)
        if node is None:
            return []
        return _filter(_parse(node[3]), types)

    def by_type(
        self,
        etype: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
        *,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Events of one type with ``since_ms <= meta.time <= until_ms``,
        oldest first (newest first with ``newest_first``), at most ``limit``."""
        ids = self.ids_by_type(etype, since_ms, until_ms, limit, newest_first=newest_first)
        return [e for e in self.get_many(ids) if e is not None]

    def ids_by_type(
        self,
        etype: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
        *,
        newest_first: bool = False,
    ) -> list[str]:
        """The ids ``by_type`` would return."""
        lo = "-inf" if since_ms is None else int(since_ms)
        hi = "+inf" if until_ms is None else int(until_ms)
        key = self._k_type + event_type(etype)
        if newest_first:
            ids = self._redis.zrevrangebyscore(key, hi, lo, start=0, num=limit)
        else:
            ids = self._redis.zrangebyscore(key, lo, hi, start=0, num=limit)
        return [_text(i) for i in ids]

    def count(self, etype: str | None = None) -> int:
        """How many events are stored (of one type when given)."""
        if etype is not None:
            return int(self._redis.zcard(self._k_type + event_type(etype)))
        return int(self._redis.hget(self._k_stats, "events") or 0)

    def find(
        self,
        etype: str,
        field: str,
        value: str | int,
        limit: int = 1000,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events of ``etype`` whose ``data.<field>`` (a dotted path listed in
        ``index_fields``) equals ``value``, oldest first, at most ``limit``,
        only those with ``since_ms <= meta.time <= until_ms`` when given."""
        etype = event_type(etype)
        if field not in self.index_fields.get(etype, ()):
            raise KeyError(f"{etype} data.{field} is not indexed (see INDEX_FIELDS)")
        lo = "-inf" if since_ms is None else int(since_ms)
        hi = "+inf" if until_ms is None else int(until_ms)
        ids = self._redis.zrangebyscore(
            f"{self._k_index}{etype}:{field}:{value}", lo, hi, start=0, num=limit
        )
        return [e for e in self.get_many(_text(i) for i in ids) if e is not None]

    # -- placeholders -----------------------------------------------------
    def waiting(self) -> int:
        """How many stored events link to a target not stored yet."""
        return int(self._redis.hlen(self._k_waiting))

    def waiting_ids(self) -> dict[str, int]:
        """The waiting events and how many targets each still waits for."""
        return {_text(k): int(v) for k, v in self._redis.hgetall(self._k_waiting).items()}

    def placeholders(self) -> list[str]:
        """The ids linked to but not stored yet, sorted."""
        return sorted(_text(i) for i in self._redis.smembers(self._k_placeholders))

    def stats(self) -> dict[str, int]:
        """Events stored, events waiting and placeholders."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self._k_stats, "events")
        pipe.hlen(self._k_waiting)
        pipe.scard(self._k_placeholders)
        events, waiting, placeholders = pipe.execute()
        return {
            "events": int(events or 0),
            "waiting": int(waiting),
            "placeholders": int(placeholders),
        }

    # -- warnings ---------------------------------------------------------
    def add_warnings(self, warnings: Mapping[str, list[dict[str, Any]]]) -> None:
        """Record, per event id, the link rules an imported event breaks
        (stored anyway under the ``warn`` link policy); replaces what was
        recorded for those ids."""
        if warnings:
            self._redis.hset(
                self._k_warnings, mapping={eid: _dumps(list(w)) for eid, w in warnings.items()}
            )

    def warnings(self, eid: str) -> list[dict[str, Any]]:
        """The link rules recorded as broken by ``eid`` (empty: none)."""
        value = self._redis.hget(self._k_warnings, eid)
        return [] if value is None else list(_loads(value))

    def warned(self, limit: int = 1000) -> dict[str, list[dict[str, Any]]]:
        """Events with recorded warnings (at most ``limit``): id -> warnings."""
        out: dict[str, list[dict[str, Any]]] = {}
        for key, value in self._redis.hscan_iter(self._k_warnings, count=500):
            out[_text(key)] = list(_loads(value))
            if len(out) >= limit:
                break
        return out

    def warned_count(self) -> int:
        """How many events have recorded warnings."""
        return int(self._redis.hlen(self._k_warnings))

    # -- chains -----------------------------------------------------------
    def chain_root(self, eid: str) -> str:
        """The id of the root of ``eid``'s chain (see the module docstring)."""
        return _text(self._chain(args=[self.prefix, eid])[0])

    def chain(self, eid: str) -> list[dict[str, Any]]:
        """The events of ``eid``'s chain (its root activity and every event
        under it), by time."""
        flat = self._chain(args=[self.prefix, eid])
        decoded = [
            self._decode(_text(flat[i]), flat[i + 1]) if flat[i + 1] else None
            for i in range(0, len(flat), 2)
        ]
        root, members = (decoded[0], decoded[1:]) if decoded else (None, [])
        # the root first whatever its time (an activity's triggered and started
        # events often share a millisecond), then the members by time, an
        # activity's own order breaking ties (triggered, started, ..., finished)
        rest = sorted(
            (e for e in members if e is not None),
            key=lambda e: (
                e["meta"]["time"],
                _CHAIN_RANK.get(e["meta"]["type"], 2),
                e["meta"]["id"],
            ),
        )
        return [root, *rest] if root is not None else rest

    # -- walks ------------------------------------------------------------
    def _walk_hits(
        self,
        eid: str,
        direction: str,
        link_types: str | Iterable[str] | None,
        depth: int,
        limit: int,
        event_types: str | Iterable[str] | None,
        max_visits: int,
    ) -> list[Hit]:
        if depth <= 0 or limit <= 0:
            return []
        flat = self._walk(
            args=[
                self.prefix,
                eid,
                direction,
                int(depth),
                int(limit),
                _types_arg(link_types),
                _types_arg(event_types, normalise=True),
                int(max_visits),
            ]
        )
        hits = []
        for i in range(0, len(flat), 4):
            event = self._decode(_text(flat[i]), flat[i + 3])
            if event is not None:
                hits.append(Hit(event, int(flat[i + 1]), _text(flat[i + 2])))
        return hits

    def upstream(
        self,
        eid: str,
        link_types: str | Iterable[str] | None = None,
        depth: int = _DEFAULT_DEPTH,
        limit: int = _DEFAULT_LIMIT,
        *,
        event_types: str | Iterable[str] | None = None,
        max_visits: int = _MAX_VISITS,
    ) -> list[Hit]:
        """What ``eid`` links to, transitively (its causes, what it was made
        from): breadth first, each event once at its least depth, following
        only ``link_types`` when given, at most ``depth`` links away and
        ``limit`` hits. ``event_types`` keeps only hits of those types (the
        walk still passes through the others); the walk gives up after
        ``max_visits`` nodes. ``eid`` itself is not a hit."""
        return self._walk_hits(eid, "up", link_types, depth, limit, event_types, max_visits)

    def downstream(
        self,
        eid: str,
        link_types: str | Iterable[str] | None = None,
        depth: int = _DEFAULT_DEPTH,
        limit: int = _DEFAULT_LIMIT,
        *,
        event_types: str | Iterable[str] | None = None,
        max_visits: int = _MAX_VISITS,
    ) -> list[Hit]:
        """The events that link to ``eid``, transitively (what was made from
        it, tested it, judged it): as ``upstream``, over the reverse links."""
        return self._walk_hits(eid, "down", link_types, depth, limit, event_types, max_visits)


def _parse(line: str) -> list[tuple[str, str]]:
    return _LINK.findall(line)


def _filter(
    pairs: list[tuple[str, str]], types: str | Iterable[str] | None
) -> list[tuple[str, str]]:
    if types is None:
        return pairs
    wanted = {types} if isinstance(types, str) else set(types)
    return [p for p in pairs if p[0] in wanted]
