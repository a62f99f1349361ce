"""kombu's Redis transport, with one client object per channel, deliveries
kept alive while their holder lives, and a way to find a workitem in the
broker's bookkeeping.

**One client per channel.** kombu's Redis channel builds a new
``redis.Redis`` client object for every publish, acknowledgement and
bookkeeping write (``conn_or_acquire``), each building its
response-callback tables again; in the engine and participant profiles that
was an eighth of all the work done per message on the embedded broker
(``Redis.__init__``, ``CaseInsensitiveDict``). The client object is only a
front to the channel's connection pool, so one per channel serves them all;
this transport keeps it.

**Held deliveries are kept alive.** kombu emulates acknowledgements: a
delivery is recorded in the ``unacked`` hash and, with the time it was
delivered, in the ``unacked_index`` sorted set; *any* consumer's channel on
the database, now and then (``QoS.restore_visible``), puts back on its queue
every delivery older than ``visibility_timeout``, whether or not its holder
is still working on it. Here a background thread (one per process,
``KeepAlive``) writes the current time into ``unacked_index`` for every
delivery a live channel of this process holds, every ``visibility_timeout /
4`` seconds. So a delivery is restored only when the process holding it is
gone (killed, frozen, cut off from the server for longer than
``visibility_timeout``), as RabbitMQ requeues only on a lost connection,
however long the step takes. Our sweep also looks at a delivery's time
again inside the transaction that restores it (``WATCH`` on the index), so
a keep-alive that lands between the scan and the restore wins.

**Finding a workitem** (``locate``): whether a workitem (``wfid``,
``subid``) waits on its queue, is held by a consumer, or has been replied
(the reply waits on the engine's queue or is being handled), read from the
same keys. The engine asks this before it dispatches a workitem again
(``engine.service``): a consumer killed between ``BRPOP`` and recording the
delivery loses it, and only then is it dispatched again.

**No delivery lost to a blocked pop.** kombu waits for a message with a
blocking ``BRPOP``. The server pops for a waiting connection the moment a
message comes, and if that connection's process was cut off from the
network (or froze) the message goes into a socket nobody reads: it is in
no queue and no bookkeeping, lost (``tests/netns``: a worker host cut off
the network took launches with it). A consumer of one queue here waits
with ``BLMOVE queue inflight RIGHT LEFT`` instead: the server moves the
message into the channel's own *in-flight* list, and a script
(``_TAKE``) then moves it, with whatever else the consumer's prefetch
allows, from there into kombu's bookkeeping (``unacked``) in one atomic
step, returning the messages. Each in-flight list is registered, with the
time, in ``_INFLIGHT_INDEX`` and kept alive with the held deliveries; a
list whose holder stopped keeping it alive for ``visibility_timeout`` is
put back on its queue by the sweep (``_RESTORE_INFLIGHT``, from
``QoS.restore_visible``), and a holder that comes back finds its list
empty and takes nothing: never lost, never delivered twice. Consumers of
several queues keep kombu's ``BRPOP`` (``BLMOVE`` has one source; BOSS's
own consumers each consume one queue per channel). Every queue has one list
(``priority_steps = [0]``: BOSS sends no priorities).

**A killed holder's messages go back within seconds.** Every connection of
a process carries its *holder* name (``CLIENT SETNAME``, ``Channel.holder``),
and every delivery and in-flight list records its holder (``_HOLDERS``,
``_INFLIGHT_HOLDERS``, written by ``_TAKE`` in the same atomic step). A
process killed with ``kill -9`` loses its connections at once, as an AMQP
client does; the keep-alive thread of every other process looks at the
server's client list every ``DEAD_SWEEP_INTERVAL`` seconds and gives back
what a holder with no connection for ``DEAD_GRACE`` seconds held (``QoS.
restore_dead``): about 3 s after the kill, for every kind of message (a
launch, a reply, a dispatched workitem, a trace batch: the transport does
not care which). Not while the server itself has just (re)started
(``RESTART_GRACE``): its clients are still coming back. A process that is
frozen or cut off keeps its connections on the server; its deliveries go
back after ``visibility_timeout``, as before. So the engine needs no
*dispatch lease* on this transport (``dispatch_lease``: off unless set, for
a Redis without ``BLMOVE``).

Everything else is kombu's. ``engine.broker.connect`` and the participant
runtime use it for ``redis://`` and ``redis+socket://`` broker URLs; any
kombu client gets it with the ``bossredis://`` (``bossredis+socket://``)
scheme once this module is imported.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Iterable
from time import monotonic, time
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

__all__ = ["SCHEME", "Channel", "KeepAlive", "QoS", "Transport", "locate"]

log = logging.getLogger("boss.broker")

#: the short name it is registered under (``bossredis+socket:///path``)
SCHEME = "bossredis"
#: a held delivery's time is written again every ``visibility_timeout`` / this
KEEPALIVE_FRACTION = 4.0
#: how many hash fields ``locate`` reads per round trip
_CHUNK = 500
#: the most deliveries one blocking pop brings (``Channel._brpop_start``)
MAX_TAKE = 256
#: the sorted set of in-flight lists (member: the list's key; score: the
#: last time its holder said it lives) and the hash naming each one's queue
_INFLIGHT_INDEX = "_boss.inflight"
_INFLIGHT_QUEUES = "_boss.inflight.queues"
#: who holds what: delivery tag -> holder, and in-flight list -> holder (a
#: holder is one process: ``holder_name``; its connections carry the name)
_HOLDERS = "_boss.holders"
_INFLIGHT_HOLDERS = "_boss.inflight.holders"
#: the connection name every connection of a holder carries (``CLIENT
#: SETNAME``), before the holder's token; a user's ``client_name`` goes first
HOLDER_MARK = "boss-holder-"
#: seconds between two sweeps for deliveries of holders that are gone
DEAD_SWEEP_INTERVAL = 1.0
#: seconds a holder must have been seen gone before its deliveries go back
#: (a live process whose connections all dropped reconnects within it)
DEAD_GRACE = 1.5
#: no holder is declared gone while the server has been up for less than
#: this: a server that just restarted has not seen its clients back yet
RESTART_GRACE = 5.0

#: what a ``BLMOVE`` brought into a channel's in-flight list, and up to
#: ARGV[1] more from its queue, into kombu's bookkeeping at time ARGV[2]
#: (``unacked`` holds ``[payload, exchange, routing_key]``, the payload as
#: it came, with the default exchange and the queue it was taken from,
#: ARGV[5]: see ``_unacked_record``) and ``_HOLDERS`` (ARGV[4], the holder);
#: returns the messages,
#: oldest first. KEYS: in-flight list, queue, ``unacked``,
#: ``unacked_index``, ``_HOLDERS``; ARGV[3] ``0``: record nothing (a
#: consumer without acknowledgements). A message that is not kombu's JSON
#: is returned unrecorded (the caller sets it aside).
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local taken = {}
for i = #items, 1, -1 do taken[#taken + 1] = items[i] end
redis.call('DEL', KEYS[1])
local more = tonumber(ARGV[1])
if more > 0 and #taken > 0 then
  local extra = redis.call('RPOP', KEYS[2], more)
  if extra then
    for _, v in ipairs(extra) do taken[#taken + 1] = v end
  end
end
for _, raw in ipairs(taken) do
  if ARGV[3] == '0' then break end
  local ok, msg = pcall(cjson.decode, raw)
  if ok and type(msg) == 'table' and type(msg.properties) == 'table'
      and msg.properties.delivery_tag then
    local p = msg.properties
    redis.call('ZADD', KEYS[4], ARGV[2], p.delivery_tag)
    redis.call('HSET', KEYS[3], p.delivery_tag,
      '[' .. raw .. ',"",' .. cjson.encode(ARGV[5]) .. ']')
    redis.call('HSET', KEYS[5], p.delivery_tag, ARGV[4])
  end
end
return taken
"""

#: put one in-flight list back on its queue and forget it (a channel that
#: closes, or whose holder is gone); how many went back. KEYS: the list, its
#: queue, the index, the hash of queues, the hash of holders
_RESTORE_ONE = """
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT') do moved = moved + 1 end
redis.call('ZREM', KEYS[3], KEYS[1])
redis.call('HDEL', KEYS[4], KEYS[1])
redis.call('HDEL', KEYS[5], KEYS[1])
return moved
"""

#: put back on their queues the in-flight lists nobody kept alive since
#: ARGV[1] (at most ARGV[2] lists); returns how many messages went back.
#: KEYS: the index, the hash of queues, the hash of holders
_RESTORE_INFLIGHT = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, list in ipairs(stale) do
  local queue = redis.call('HGET', KEYS[2], list)
  if queue then
    while redis.call('LMOVE', list, queue, 'RIGHT', 'RIGHT') do moved = moved + 1 end
  end
  redis.call('ZREM', KEYS[1], list)
  redis.call('HDEL', KEYS[2], list)
  redis.call('HDEL', KEYS[3], list)
end
return moved
"""


class QoS(kombu_redis.QoS):
    """kombu's ack emulation, with held deliveries kept alive (``KeepAlive``)
    and a sweep that restores only deliveries nobody keeps alive."""

    #: while ``Channel._brpop_read`` delivers several: the pipeline their
    #: bookkeeping goes into (executed once, when all are delivered)
    batch_pipe: Any = None
    #: while ``Channel._blmove_read`` delivers: the bookkeeping is written
    recorded = False

    def append(self, message: Any, delivery_tag: Any) -> None:
        if not self.recorded:  # (``_TAKE`` recorded it already)
            batch = self.batch_pipe
            with self.pipe_or_acquire(batch) as pipe:
                pipe.zadd(self.unacked_index_key, {delivery_tag: time()})
                queue = getattr(self.channel.connection, "delivering", None)
                pipe.hset(self.unacked_key, delivery_tag, _unacked_record(message, queue))
                pipe.hset(_HOLDERS, delivery_tag, self.channel.holder)
                if batch is None:
                    pipe.execute()
        # the virtual QoS's own bookkeeping (what kombu's append does after)
        super(kombu_redis.QoS, self).append(message, delivery_tag)
        KEEPALIVE.add(self)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        with self.pipe_or_acquire(pipe) as pipe:
            return (
                pipe.zrem(self.unacked_index_key, delivery_tag)
                .hdel(self.unacked_key, delivery_tag)
                .hdel(_HOLDERS, delivery_tag)
            )

    def ack_many(self, tags: list[Any]) -> None:
        """Acknowledge several deliveries in one round trip (kombu's
        ``ack`` makes one per delivery); the engine acknowledges its
        batches with it."""
        with self.pipe_or_acquire() as pipe:
            for tag in tags:
                self._remove_from_indices(tag, pipe)
            pipe.execute()
        for tag in tags:
            super(kombu_redis.QoS, self).ack(tag)  # the virtual QoS's own bookkeeping

    def held_tags(self) -> list[str]:
        """The delivery tags this channel holds and has not acknowledged."""
        for _ in range(5):  # the consumer's thread may change them meanwhile
            try:
                dirty = set(self._dirty)
                return [tag for tag in list(self._delivered) if tag not in dirty]
            except RuntimeError:
                continue
        return []

    def keep_alive(self, now: float | None = None) -> int:
        """Write ``now`` as the delivery time of every held delivery (only
        those still recorded: ``XX``), and of the channel's in-flight list;
        how many deliveries there were."""
        tags = self.held_tags()
        inflight = getattr(self.channel, "_inflight", None)
        if not tags and inflight is None:
            return 0
        stamp = time() if now is None else now
        client = self.channel.Client(connection_pool=self.channel.pool)
        if inflight is not None:
            # (not XX: a list the sweep put back while this process was cut
            # off is registered again; it is empty, nothing comes twice)
            pipe = client.pipeline(transaction=False)
            pipe.zadd(_INFLIGHT_INDEX, {inflight[0]: stamp})
            pipe.hset(_INFLIGHT_QUEUES, inflight[0], inflight[1])
            pipe.hset(_INFLIGHT_HOLDERS, inflight[0], self.channel.holder)
            if tags:
                pipe.zadd(self.unacked_index_key, dict.fromkeys(tags, stamp), xx=True)
            pipe.execute()
        elif tags:
            client.zadd(self.unacked_index_key, dict.fromkeys(tags, stamp), xx=True)
        return len(tags)

    @property
    def keepalive_interval(self) -> float:
        return max(0.05, float(self.visibility_timeout) / KEEPALIVE_FRACTION)

    @property
    def live(self) -> bool:
        channel = self.channel
        return not getattr(channel, "closed", False) and not getattr(channel, "_closing", False)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        self._vrestore_count += 1
        if (self._vrestore_count - 1) % (interval or 1):
            return
        with self.channel.conn_or_acquire() as client:
            ceil = time() - self.visibility_timeout
            try:
                moved = client.eval(
                    _RESTORE_INFLIGHT,
                    3,
                    _INFLIGHT_INDEX,
                    _INFLIGHT_QUEUES,
                    _INFLIGHT_HOLDERS,
                    ceil,
                    100,
                )
            except kombu_redis.redis.ResponseError as exc:  # no LMOVE (Redis < 6.2)
                log.debug("in-flight sweep failed: %s", exc)
                moved = 0
            if moved:
                log.warning(
                    "restored %d message(s) taken by a consumer that stopped keeping them alive",
                    moved,
                )
            try:
                with kombu_redis.Mutex(client, self.unacked_mutex_key, self.unacked_mutex_expire):
                    visible = client.zrange(
                        self.unacked_index_key,
                        ceil,
                        0,
                        desc=True,
                        byscore=True,
                        offset=num and start,
                        num=num,
                        withscores=True,
                    )
                    for tag, _score in visible or []:
                        self.restore_if_stale(tag, ceil, client)
            except kombu_redis.MutexHeld:
                pass

    def restore_dead(self, absent: dict[str, float], now: float) -> int:
        """Put back every delivery and in-flight list whose holder (a
        process: ``Channel.holder``) has had no connection to the server for
        ``DEAD_GRACE`` seconds, as RabbitMQ requeues the deliveries of a
        connection that closed: a process killed with ``kill -9`` has its
        messages given back within a few seconds, whatever the
        ``visibility_timeout``. ``absent`` (holder: when first seen gone) is
        kept by the caller between sweeps. How many messages went back.

        Liveness is read from ``CLIENT LIST`` (every connection of a holder
        carries its name); a user without that command or ``INFO`` (an ACL
        user without ``+client|list``) raises ``redis.ResponseError``. A process that is
        frozen or cut off keeps its connections open on the server: its
        deliveries go back after ``visibility_timeout`` (``restore_visible``)."""
        client = self.channel.Client(connection_pool=self.channel.pool)
        pipe = client.pipeline(transaction=False)
        pipe.client_list(_type="normal")
        pipe.info("server")
        pipe.hgetall(_HOLDERS)
        pipe.hgetall(_INFLIGHT_HOLDERS)
        clients, server, raw_tags, raw_lists = pipe.execute()
        live = {holder_of(str(c.get("name") or "")) for c in clients}
        tags = {_text(k): _text(v) for k, v in raw_tags.items()}
        lists = {_text(k): _text(v) for k, v in raw_lists.items()}
        gone = {h for h in (*tags.values(), *lists.values()) if h not in live}
        for holder in [h for h in absent if h not in gone]:
            del absent[holder]
        for holder in gone:
            absent.setdefault(holder, now)
        if float(server.get("uptime_in_seconds") or 0) < RESTART_GRACE:
            return 0  # the server just (re)started: its clients are still coming back
        dead = {h for h in gone if now - absent[h] >= DEAD_GRACE}
        if not dead:
            return 0
        moved = 0
        for key, holder in lists.items():
            if holder in dead:
                queue = client.hget(_INFLIGHT_QUEUES, key)
                if queue is None:
                    client.hdel(_INFLIGHT_HOLDERS, key)
                    continue
                moved += int(
                    client.eval(
                        _RESTORE_ONE,
                        5,
                        key,
                        queue,
                        _INFLIGHT_INDEX,
                        _INFLIGHT_QUEUES,
                        _INFLIGHT_HOLDERS,
                    )
                )
        for tag, holder in tags.items():
            if holder in dead:
                moved += self.restore_if_held_by(tag, holder, client)
        if moved:
            log.warning(
                "gave back %d message(s) held by %s: no connection of theirs for %.1fs",
                moved,
                ", ".join(sorted(dead)),
                min(now - absent[h] for h in dead),
            )
        for holder in dead:
            absent.pop(holder, None)
        return moved

    def restore_if_held_by(self, tag: str, holder: str, client: Any) -> bool:
        """Put a delivery back on its queue if ``holder`` still holds it."""

        def held(pipe: Any) -> bool:  # not acknowledged or given back meanwhile
            return _text(pipe.hget(_HOLDERS, tag) or b"") == holder

        return self._restore_when(tag, held, client, _HOLDERS, self.unacked_key)

    def restore_if_stale(self, tag: Any, ceil: float, client: Any) -> bool:
        """Put a delivery back on its queue if its time is still at or before
        ``ceil`` (nobody kept it alive since the scan); True if restored."""

        def stale(pipe: Any) -> bool:  # not acknowledged, restored or kept alive
            score = pipe.zscore(self.unacked_index_key, tag)
            return score is not None and float(score) <= ceil

        restored = self._restore_when(tag, stale, client, self.unacked_key, self.unacked_index_key)
        if restored:
            log.warning("restored delivery %s: its holder stopped keeping it alive", tag)
        return restored

    def _restore_when(self, tag: Any, still: Any, client: Any, *watch: str) -> bool:
        """Put a delivery back on the queue it was taken from, in one
        transaction watching ``watch``, if ``still(pipe)`` holds there."""
        restored = False

        def transaction(pipe: Any) -> None:
            nonlocal restored
            restored = False
            if not still(pipe):
                return
            payload = pipe.hget(self.unacked_key, tag)
            pipe.multi()
            self._remove_from_indices(tag, pipe)
            if payload:
                message, exchange, routing_key = json.loads(kombu_redis.bytes_to_str(payload))
                self.channel._do_restore_message(message, exchange, routing_key, pipe, False)
            restored = True

        client.transaction(transaction, *watch)
        return restored


class KeepAlive:
    """One daemon thread per process writing the time of every delivery the
    process's live channels hold into ``unacked_index`` (see the module
    docstring). Channels register themselves when they get a delivery and
    are forgotten when closed or garbage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._qos: weakref.WeakSet[QoS] = weakref.WeakSet()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: rounds done (for tests)
        self.rounds = 0
        #: when the held deliveries' times are written next, and when the
        #: next sweep for holders that are gone runs (monotonic)
        self._stamp_due = 0.0
        self._sweep_due = 0.0
        #: per server: holder -> when this process first saw it gone
        self._absent: dict[tuple[str, ...], dict[str, float]] = {}
        #: servers where this process's user may not run ``CLIENT LIST``
        self._blind: set[tuple[str, ...]] = set()

    def add(self, qos: QoS) -> None:
        thread = self._thread
        if qos in self._qos and thread is not None and thread.is_alive():
            return  # the common case, once per delivery: no lock
        with self._lock:
            if self._pid != os.getpid():  # forked: the thread stayed behind
                self._pid, self._thread, self._qos = os.getpid(), None, weakref.WeakSet()
            self._qos.add(qos)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="boss-redis-keepalive", daemon=True
                )
                self._thread.start()

    def _channels(self) -> list[QoS]:
        with self._lock:
            items = list(self._qos)
            for qos in items:
                if not qos.live:
                    self._qos.discard(qos)
            return [qos for qos in items if qos.live]

    def beat(self) -> float:
        """One round: the held deliveries' times written when due, and a
        sweep for holders that are gone when due; the seconds until the next."""
        channels = self._channels()
        now = monotonic()
        if now >= self._stamp_due:
            interval = min((qos.keepalive_interval for qos in channels), default=1.0)
            for qos in channels:
                try:
                    qos.keep_alive()
                except Exception as exc:  # the server is away: next round
                    log.debug("keep-alive of held deliveries failed: %s", exc)
                    interval = min(interval, 0.5)
            self._stamp_due = now + interval
        if now >= self._sweep_due:
            self.sweep(channels)
            self._sweep_due = now + DEAD_SWEEP_INTERVAL
        self.rounds += 1
        return max(0.05, min(self._stamp_due, self._sweep_due) - monotonic())

    def sweep(self, channels: list[QoS]) -> int:
        """``QoS.restore_dead`` once per server the channels talk to."""
        servers: dict[tuple[str, ...], QoS] = {}
        for qos in channels:
            servers.setdefault(_server(qos), qos)
        moved = 0
        for server, qos in servers.items():
            if server in self._blind:
                continue
            absent = self._absent.setdefault(server, {})
            try:
                moved += qos.restore_dead(absent, monotonic())
            except kombu_redis.redis.ResponseError as exc:
                self._blind.add(server)
                log.info(
                    "not sweeping for killed consumers' messages on %s (%s): they go "
                    "back after visibility_timeout, or when another process sweeps",
                    "/".join(server),
                    exc,
                )
            except Exception as exc:  # the server is away: the absences start again
                absent.clear()
                log.debug("sweep for killed consumers failed: %s", exc)
        return moved

    def _run(self) -> None:
        while True:
            try:
                interval = self.beat()
            except Exception:  # never let the thread die
                log.exception("keep-alive round failed")
                interval = 0.5
            self._wake.wait(interval)
            self._wake.clear()


KEEPALIVE = KeepAlive()

_TOKEN: tuple[int, str] = (0, "")


def holder_token() -> str:
    """This process's holder name (a fresh one in a forked child)."""
    global _TOKEN
    pid = os.getpid()
    if _TOKEN[0] != pid:
        _TOKEN = (pid, uuid.uuid4().hex[:16])
    return _TOKEN[1]


def holder_of(name: str) -> str | None:
    """The holder a connection name (``CLIENT SETNAME``) names, if any."""
    at = name.rfind(HOLDER_MARK)
    return name[at + len(HOLDER_MARK) :] if at >= 0 else None


def _unacked_record(message: Any, queue: str | None) -> str:
    """What ``unacked`` keeps of a delivery: ``[payload, exchange,
    routing_key]``, with the default exchange and the queue the message was
    taken from (``queue``; else its routing key), not the exchange it was
    published to. A delivery given back goes to its own
    queue, as RabbitMQ requeues it, whichever process gives it back: routed
    through its exchange again, a message published to a topic exchange
    (a trace batch) that the giving process never declared was routed as
    if direct, matched no binding, and was lost (the chaos test found it);
    and a fanout would have copied it to every bound queue."""
    return kombu_redis.dumps([message._raw, "", queue or message.delivery_info["routing_key"]])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _server(qos: QoS) -> tuple[str, ...]:
    kwargs = qos.channel.pool.connection_kwargs
    return tuple(str(kwargs.get(k, "")) for k in ("path", "host", "port", "db"))


def _reset_after_fork() -> None:
    KEEPALIVE.__init__()  # type: ignore[misc]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel with one client object, and a blocking pop
    that brings more than one delivery when the consumer's prefetch allows
    (``_brpop_start``)."""

    QoS = QoS
    _sync_client: Any = None
    #: whether the server has ``BLMPOP`` (Redis and Valkey >= 7.0); else
    #: one delivery per ``BRPOP``, as kombu
    _blmpop = True
    #: the BLMPOP in flight (None: kombu's BRPOP, or nothing)
    _lmpop_sent: int | None = None
    #: whether the server has ``BLMOVE`` (Redis and Valkey >= 6.2)
    _blmove = True
    #: the BLMOVE in flight: (queue, its key, how many in all it may take)
    _lmove_sent: tuple[str, str, int] | None = None
    #: this channel's in-flight list and its queue's key, once it has one
    _inflight: tuple[str, str] | None = None
    #: one list per queue (BOSS publishes no priorities): see the module doc
    priority_steps = [0]
    #: ``_TAKE``, registered (``EVALSHA``) on first use
    _take_script: Any = None

    @property
    def holder(self) -> str:
        """Who holds this channel's deliveries: its process (see
        ``QoS.restore_dead``), fixed when the channel is made."""
        holder = self.__dict__.get("_holder")
        if holder is None:
            holder = self.__dict__["_holder"] = holder_token()
        return holder

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # every connection carries the holder's name: the server's client
        # list says which holders are alive
        params = super()._connparams(asynchronous=asynchronous)
        mark = HOLDER_MARK + self.holder
        name = params.get("client_name")
        params["client_name"] = f"{name}-{mark}" if name else mark
        return params

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        # a consumer without acknowledgements (cancel items) keeps no
        # bookkeeping: ``_TAKE`` must not record its deliveries either
        noack = self.__dict__.setdefault("_no_ack_queues", set())
        (noack.add if no_ack else noack.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _take(self) -> int:
        """How many deliveries the consumer may take now (its free prefetch
        window; 1 for a consumer that holds one at a time)."""
        free = self.qos.can_consume_max_estimate()
        return min(int(free or 1), MAX_TAKE)

    def _brpop_start(self, timeout: float | None = None) -> None:
        """kombu's ``BRPOP``, or, when the consumer may take more than one
        (its prefetch window: the engine's batches), ``BLMPOP ... RIGHT
        COUNT n``: every message waiting, up to n, in the one blocking round
        trip that would have brought one."""
        take = self._take()
        if self._blmove and not self.global_keyprefix and len(self.active_queues) == 1:
            self._lmpop_sent = None
            self._blmove_start(take, timeout)
            return
        if not self._blmpop or take <= 1 or self.global_keyprefix:
            self._lmpop_sent = None
            super()._brpop_start(timeout)
            return
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        self._in_poll = self.client.connection
        self._brpop_sent_at = kombu_redis.monotonic()
        self._lmpop_sent = take
        self.client.connection.send_command(
            "BLMPOP", timeout or 0, len(keys), *keys, "RIGHT", "COUNT", take
        )

    def _blmove_start(self, take: int, timeout: float | None) -> None:
        """``BLMOVE queue inflight RIGHT LEFT``: wait for a message that
        lands in this channel's in-flight list, not in the socket."""
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(1)
        if not queues:
            return
        queue = queues[0]
        key = self._q_for_pri(queue, 0)
        if self._inflight is None or self._inflight[1] != key:
            self._inflight = (f"{_INFLIGHT_INDEX}.{key}.{uuid.uuid4().hex}", key)
            client = self.Client(connection_pool=self.pool)
            pipe = client.pipeline(transaction=True)
            pipe.zadd(_INFLIGHT_INDEX, {self._inflight[0]: time()})
            pipe.hset(_INFLIGHT_QUEUES, self._inflight[0], key)
            pipe.hset(_INFLIGHT_HOLDERS, self._inflight[0], self.holder)
            pipe.execute()
            KEEPALIVE.add(self.qos)
        self._in_poll = self.client.connection
        self._brpop_sent_at = kombu_redis.monotonic()
        self._lmove_sent = (queue, key, take)
        self.client.connection.send_command(
            "BLMOVE", key, self._inflight[0], "RIGHT", "LEFT", timeout or 0
        )

    def _blmove_read(self, queue: str, key: str, take: int, **options: Any) -> bool:
        """What ``BLMOVE`` brought: take it (and up to ``take - 1`` more)
        from the in-flight list into the bookkeeping with ``_TAKE`` and
        deliver it. A holder the sweep gave up on takes nothing."""
        assert self._inflight is not None
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except kombu_redis.redis.ResponseError as exc:
                type(self)._blmove = False  # no BLMOVE: kombu's way from now on
                log.warning(
                    "the broker's server has no BLMOVE (%s; Redis < 6.2): taking with "
                    "BRPOP, which loses a message to a consumer killed as it takes it; "
                    "set dispatch_lease (e.g. 62) so the engine dispatches a lost "
                    "workitem again",
                    exc,
                )
                raise kombu_redis.Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()
        if reply is None:
            raise kombu_redis.Empty()
        no_ack = queue in self.__dict__.get("_no_ack_queues", ())
        client = self._create_client()  # the channel's one client object
        script = self._take_script
        if script is None:
            script = self._take_script = client.register_script(_TAKE)
        taken = script(
            keys=[
                self._inflight[0],
                key,
                self.qos.unacked_key,
                self.qos.unacked_index_key,
                _HOLDERS,
            ],
            args=[max(0, take - 1), time(), 0 if no_ack else 1, self.holder, queue],
            client=client,
        )
        if not taken:
            raise kombu_redis.Empty()
        self._queue_cycle.rotate(queue)
        qos = self.qos
        qos.recorded = True  # _TAKE wrote the bookkeeping (none for no_ack)
        try:
            for raw in taken:
                try:
                    payload = kombu_redis.loads(kombu_redis.bytes_to_str(raw))
                except ValueError:
                    log.error("not a kombu message on %s, set aside in the log: %r", key, raw[:500])
                    continue
                self.connection._deliver(payload, queue)
        finally:
            qos.recorded = False
        return True

    def _brpop_read(self, **options: Any) -> bool:
        """Read what ``_brpop_start`` asked for and deliver it; several
        deliveries get their bookkeeping (``unacked``) written in one
        pipeline: N deliveries in two round trips, not 2N."""
        lmove, self._lmove_sent = self._lmove_sent, None
        if lmove is not None:
            return self._blmove_read(*lmove, **options)
        lmpop, self._lmpop_sent = self._lmpop_sent, None
        try:
            try:
                reply = self.client.parse_response(
                    self.client.connection, "BLMPOP" if lmpop else "BRPOP", **options
                )
            except kombu_redis.redis.ResponseError:
                if not lmpop:
                    raise
                # a server without BLMPOP: one delivery per BRPOP from now on
                type(self)._blmpop = False
                raise kombu_redis.Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not reply:
                raise kombu_redis.Empty()
            key, items = (reply[0], list(reply[1])) if lmpop else (reply[0], [reply[1]])
            if not items:
                raise kombu_redis.Empty()
            dest = kombu_redis.bytes_to_str(key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()
        if len(items) == 1:
            self.connection._deliver(kombu_redis.loads(kombu_redis.bytes_to_str(items[0])), dest)
            return True
        qos = self.qos
        pipe = self.client.pipeline()
        qos.batch_pipe = pipe
        try:
            for raw in items:
                self.connection._deliver(kombu_redis.loads(kombu_redis.bytes_to_str(raw)), dest)
        finally:
            qos.batch_pipe = None
            pipe.execute()
        return True

    def close(self) -> None:
        inflight = self._inflight
        if inflight is not None and not self.closed:
            # kombu's close reads a pending wait first; then what is still in
            # flight goes back at once (the pool is still open), and the list
            # is forgotten
            self._closing = True
            if self._in_poll:
                with contextlib.suppress(kombu_redis.Empty, *self.connection_errors):
                    self._brpop_read()
            try:
                client = self.Client(connection_pool=self.pool)
                client.eval(
                    _RESTORE_ONE,
                    5,
                    inflight[0],
                    inflight[1],
                    _INFLIGHT_INDEX,
                    _INFLIGHT_QUEUES,
                    _INFLIGHT_HOLDERS,
                )
            except Exception as exc:  # the sweep puts it back later
                log.warning("could not give back in-flight list %s: %s", inflight[0], exc)
            self._inflight = None
        super().close()

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
    #: the queue of the delivery being handed over (kombu's messages do not
    #: say which queue they came from: ``_unacked_record``)
    delivering: str | None = None

    def _deliver(self, message: Any, queue: str) -> None:
        self.delivering = queue
        try:
            super()._deliver(message, queue)
        finally:
            self.delivering = None


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")


# -- finding a workitem in the bookkeeping -------------------------------------------


def _body(payload: Any) -> bytes | None:
    """The message body of one kombu Redis payload (a JSON object)."""
    if not isinstance(payload, dict):
        return None
    body = payload.get("body")
    if not isinstance(body, str | bytes):
        return None
    raw = body.encode() if isinstance(body, str) else body
    props = payload.get("properties")
    if isinstance(props, dict) and props.get("body_encoding") == "base64":
        try:
            return base64.b64decode(raw)
        except (binascii.Error, ValueError):
            return None
    return raw


def _names(body: bytes | None, wfid: bytes, subid: bytes) -> bool:
    """Whether ``body`` is a workitem (or its reply) of step ``subid`` of run
    ``wfid``; a reply of a ruote 2.1 participant names it ``sub_wfid``."""
    if body is None or wfid not in body or subid not in body:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    fei = data.get("fei") if isinstance(data, dict) else None
    if not isinstance(fei, dict):
        return False
    step = fei.get("subid") if fei.get("subid") is not None else fei.get("sub_wfid")
    return fei.get("wfid") == wfid.decode() and step == subid.decode()


def _matches(raw: bytes | str, wfid: bytes, subid: bytes, unacked: bool) -> bool:
    data = raw.encode() if isinstance(raw, str) else raw
    # the body is base64 in the payload: parse only what may be it
    try:
        payload = json.loads(data)
    except ValueError:
        return False
    if unacked:  # [payload, exchange, routing key]
        payload = payload[0] if isinstance(payload, list) and payload else None
    return _names(_body(payload), wfid, subid)


def locate(
    channel: Any,
    wfid: str,
    subid: str,
    *,
    queues: Iterable[str] = (),
    reply_queues: Iterable[str] = (),
) -> str | None:
    """Where the workitem of step ``subid`` of run ``wfid`` is on the broker
    of kombu Redis ``channel``: ``"held"`` (a consumer has it and has not
    acknowledged it, or the engine is handling its reply), ``"queued"`` (on
    one of ``queues``), ``"replied"`` (its reply is on one of
    ``reply_queues``), or None: nowhere, done or lost.

    The common answer (held: a participant works on it) comes from a scan
    of the unacknowledged deliveries. Only when that finds nothing are the
    queues and the unacknowledged deliveries read again, in one ``MULTI``
    transaction: a snapshot, so a delivery moving between a queue and the
    bookkeeping meanwhile is not missed."""
    w, s = wfid.encode(), subid.encode()
    with channel.conn_or_acquire() as client:
        for _tag, raw in client.hscan_iter(channel.unacked_key, count=_CHUNK):
            if _matches(raw, w, s, unacked=True):
                return "held"
        lists = [
            (where, channel._q_for_pri(name, pri))
            for where, names in (("queued", queues), ("replied", reply_queues))
            for name in dict.fromkeys(names)
            for pri in channel.priority_steps
        ]
        # moved in flight by a consumer's BLMOVE and not taken yet: held
        # (taken in a moment, or put back by the sweep)
        lists += [
            ("held", kombu_redis.bytes_to_str(key)) for key in client.zrange(_INFLIGHT_INDEX, 0, -1)
        ]
        pipe = client.pipeline(transaction=True)
        pipe.hvals(channel.unacked_key)
        for _where, key in lists:
            pipe.lrange(key, 0, -1)
        held, *contents = pipe.execute()
    if any(_matches(raw, w, s, unacked=True) for raw in held):
        return "held"
    for (where, _key), items in zip(lists, contents, strict=True):
        if any(_matches(raw, w, s, unacked=False) for raw in items):
            return where
    return None
