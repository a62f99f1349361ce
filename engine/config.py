"""Configuration: one INI file plus environment variables.

Every ``boss`` process (engine worker, CLI, participant runtime, web UI)
reads the same ``[boss]`` section. Where a value comes from, first match
wins:

1. an explicit argument (``--config``, ``Config.load(path=...)``, keyword
   overrides),
2. the environment (``BOSS_BROKER_URL``, ``BOSS_REDIS_URL``, ... one
   variable per key, upper-cased with a ``BOSS_`` prefix),
3. the file: ``$BOSS_CONFIG``, else ``./boss.ini``, else
   ``~/.config/boss/boss.ini``, else ``/etc/boss/boss.ini`` (the first that
   exists),
4. the defaults below: the embedded Valkey under the state directory as
   both run store and broker (kombu's Redis transport), so a fresh machine
   needs nothing.

A participant's INI file may carry the same ``[boss]`` section, or name the
broker as SkyNET's configuration did (``[boss]`` ``amqp_host``,
``amqp_user``, ``amqp_pwd``, ``amqp_vhost``), or with an ``[amqp]`` section
(``host``, ``user``, ``pwd``, ``vhost``); both are turned into a broker URL.

``docs/configuration.md`` lists every key.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from engine.settings import (
    ConfigError,
    Section,
    at_least,
    checked,
    config_paths,
    not_negative,
    positive,
    setting,
    to_list,
)

__all__ = [
    "ENGINE_ONLY_KEYS",
    "SKYNET_AMQP_KEYS",
    "Config",
    "ConfigError",
    "amqp_section_url",
    "config_paths",
]

#: ``[boss]`` keys only engine workers and administrators need: SkyNET does
#: not copy them into participants' program files (secrets)
ENGINE_ONLY_KEYS = ("dispatch_key", "dispatch_key_file", "broker_admin", "redis_admin_url")

#: SkyNET's ``[boss]`` keys naming the broker (``skynet.conf``)
SKYNET_AMQP_KEYS = ("amqp_host", "amqp_user", "amqp_pwd", "amqp_vhost")


@dataclass(frozen=True, slots=True)
class Config(Section):
    SECTION: ClassVar[str] = "boss"
    ENV_PREFIX: ClassVar[str] = "BOSS_"
    UNKNOWN: ClassVar[str] = "unknown configuration key"
    NEEDS_SECTION: ClassVar[bool] = True

    #: the message broker: ``amqp://user:pass@host:5672/vhost`` (RabbitMQ;
    #: ``amqps://...:5671/vhost``: over TLS, see ``broker_ca``) or
    #: ``redis://...``/``redis+socket:///path`` (kombu's Redis transport);
    #: empty = the embedded Valkey
    broker_url: str = ""
    #: TLS to the broker (RabbitMQ: ``amqps://``, also ``amqp://`` when any
    #: of these three is set; Valkey/Redis: ``rediss://``): the CA
    #: certificates (PEM file) the broker's certificate must chain to;
    #: empty: the system's trusted CAs
    broker_ca: str = ""
    #: a client certificate (PEM file) to present to the broker; on
    #: RabbitMQ, when ``broker_url`` has no password, BOSS logs in by it
    #: (SASL EXTERNAL: RabbitMQ's ``rabbitmq_auth_mechanism_ssl`` plugin)
    broker_cert: str = ""
    #: the client certificate's private key (PEM file); empty: it is in
    #: ``broker_cert``
    broker_key: str = ""
    #: TLS: the broker's certificate must name the host of ``broker_url``
    broker_verify_hostname: bool = True
    #: the run store: ``redis://``, ``unix://``, ``valkey://``; empty = embedded
    redis_url: str = ""
    #: TLS to the store (``rediss://``, ``rediss+sentinel://``): the CA
    #: certificates (PEM file) the server's certificate must chain to (its
    #: hostname is verified); empty: the system's trusted CAs. Added to the
    #: store URL as redis-py's ``ssl_ca_certs`` (``resolved_redis_url``)
    redis_ca: str = ""
    #: a client certificate (PEM file) to present to the store (``ssl_certfile``)
    redis_cert: str = ""
    #: the client certificate's private key (PEM file; ``ssl_keyfile``)
    redis_key: str = ""
    #: replicas that must acknowledge each save of a run before the message
    #: that made it is acknowledged (``WAIT``); -1 (the default): 1 on a
    #: Sentinel URL (``redis+sentinel://``), else 0 (no WAIT)
    redis_wait_replicas: int = setting(-1, check=at_least(-1))
    #: prefix of every Redis key BOSS writes
    key_prefix: str = "boss:"
    #: the engine's queue: replies, launch items and operations
    engine_queue: str = "boss.engine"
    #: a second queue the engine workers consume exactly as ``engine_queue``
    #: (durable, default exchange), for legacy participants written against
    #: python-ruote-amqp, which reply to ``ruote_workitems`` whatever the
    #: workitem's ``reply_to`` says; empty (the default): none
    legacy_reply_queue: str = ""
    #: malformed messages are moved here (never dropped)
    deadletter_queue: str = "boss.deadletter"
    #: topic exchange for cancel items (routing key: the participant's queue)
    control_exchange: str = "boss.control"
    #: where ``process`` names in launch items are looked up
    process_dir: str = ""
    #: the embedded Valkey's state directory (``$BOSS_STATE_DIR``)
    state_dir: str = ""
    #: the embedded Valkey's ``appendfsync``: ``everysec`` (a power cut may
    #: lose the last second of writes), ``always`` (none, at a cost) or
    #: ``no`` (the OS flushes when it likes); a killed server loses nothing
    #: either way (docs/runtime.md); applies when the server (re)starts
    embedded_fsync: str = setting(
        "everysec",
        check=checked(
            lambda v: v in ("everysec", "always", "no"), "must be everysec, always or no"
        ),
    )
    #: seconds a participant may hold a delivery before it takes a lease
    #: instead (acknowledges it, tells the engine, and sends heartbeats)
    lease_after: float = setting(2.0, check=not_negative())
    #: workitems a participant instance takes from its queue at once: the
    #: one it works on and the next ones (4, the default: up to 3), each
    #: started the moment the reply before it is published; a finished one
    #: counts until the broker has confirmed its reply (its acknowledgement
    #: waits for that), so 2 leaves the instance waiting for that confirm
    #: on a stream of short steps; 1: one at a time, the next delivered
    #: only after the acknowledgement of the last. 8 (was 4): on RabbitMQ
    #: a reply's confirm can wait for the broker's disk, and 4 left the
    #: instance without a next workitem at times (docs/benchmarks.md,
    #: fifth slice of issue 19)
    participant_prefetch: int = setting(8, check=checked(lambda v: 1 <= v <= 64, "must be 1 to 64"))
    #: seconds a participant instance keeps the next workitems while the one
    #: in hand is still running; then it gives them back to the queue (for
    #: another instance) and takes no more until it is idle
    participant_hold: float = setting(0.2, check=not_negative())
    #: seconds without a heartbeat after which the engine dispatches a
    #: leased workitem again (the instance that had it is presumed dead)
    lease: float = setting(60.0, check=positive("seconds"))
    #: kombu's Redis transport: seconds after a dispatch with neither a
    #: reply nor a ``started`` notice before the engine looks for the
    #: workitem in the broker's bookkeeping, and dispatches it again only if
    #: it is on no queue and held by no consumer, found nowhere twice; 0 and
    #: -1 (the default): never. Not needed where the server has ``BLMOVE``
    #: (Redis/Valkey >= 6.2, the embedded Valkey): a message moves atomically
    #: from its queue to its holder, and a killed holder's messages go back
    #: (``engine.redis_transport``). Set it (e.g. 62) for an older Redis,
    #: which loses a message to a consumer killed as it pops it, or to cover
    #: the last second of writes a power cut takes from a Valkey with
    #: ``appendfsync everysec``. Always 0 on RabbitMQ, which loses no delivery
    dispatch_lease: float = -1.0
    #: kombu Redis transport: seconds after which a delivery whose holder
    #: stopped keeping it alive goes to another consumer (a frozen process,
    #: or one cut off the network; a killed one's deliveries go back within
    #: about 3 s: its connections are gone)
    visibility_timeout: float = setting(30.0, check=positive("seconds"))
    #: seconds the longest step of a participant that sends no heartbeats
    #: may take (0: not said); on RabbitMQ, workers and participants warn at
    #: start when it exceeds ``consumer_timeout``
    max_step_time: float = setting(0.0, check=not_negative())
    #: RabbitMQ: the broker's ``consumer_timeout`` in seconds, as set in its
    #: rabbitmq.conf (RabbitMQ's default: 1800; 0: the timeout is off). A
    #: client cannot read it; it is compared with ``max_step_time``
    consumer_timeout: float = setting(1800.0, check=not_negative())
    #: seconds between an engine worker's heartbeats (liveness in Redis)
    heartbeat: float = setting(2.0, check=positive("seconds"))
    #: wait for the broker to confirm each publish (RabbitMQ)
    confirm_publish: bool = True
    #: consumer threads per engine worker
    engine_threads: int = setting(1, check=at_least(1))
    #: the most messages an engine consumer thread takes and handles
    #: together (its prefetch): their runs loaded and stored in one round
    #: trip each, their publishes confirmed together, then acknowledged
    #: together (``EngineService.handle_batch``); 1: one at a time. 128
    #: (was 64): with participants that take 8 at a time the engine's own
    #: window was the next to fill (docs/benchmarks.md, fifth slice of issue 19)
    engine_batch: int = setting(128, check=at_least(1))
    #: traceability: the topic exchange Eiffel events are published on
    #: (routing key ``eiffel._.<EventType>._.<domain>``; the engine's
    #: activity events of one message go as one batch, ``eiffel._.batch._._``)
    event_exchange: str = "boss.eiffel"
    #: the durable queue the aggregators consume (bound to every event)
    trace_queue: str = "boss.trace"
    #: invalid events are moved here with the reason
    trace_deadletter_queue: str = "boss.trace.deadletter"
    #: whether engine workers publish an Eiffel event for every transition
    events: bool = True
    #: seconds an engine consumer holds the events of a message for the
    #: next messages' (one publish, one trace-queue message, one aggregator
    #: batch for several), acknowledging those messages once the events are
    #: published and confirmed; 0: published with each message (or batch)
    events_linger: float = setting(0.01, check=not_negative())
    #: aggregator threads per engine worker (``boss aggregator`` runs more
    #: anywhere); 0: this worker does not write the traceability graph
    trace_threads: int = setting(1, check=at_least(0))
    #: the Eiffel ``meta.source.domainId`` and routing-key domain
    eiffel_domain: str = "boss"
    #: extra Eiffel protocol definition directories (``:``-separated), for
    #: event versions newer than the schemas eiffellib ships
    eiffel_definitions: str = ""
    #: step logs: participant runtimes capture what a handler logs and
    #: prints while it works on a workitem and send it, tagged with the run
    #: and the step, to the aggregator processes (an engine worker's with
    #: ``trace_threads`` > 0, ``boss aggregator``), which keep it in the store
    #: (``boss logs``, the run page's step panel); false: a participant
    #: sends none, an aggregator process writes none
    step_logs: bool = True
    #: the most lines kept per step (a run's step, every attempt of it);
    #: past it one line says so and later ones are counted, not kept
    step_log_lines: int = setting(10_000, check=at_least(1))
    #: the most bytes of text kept per step (as ``step_log_lines``)
    step_log_bytes: int = setting(1 << 20, check=at_least(1024))
    #: seconds a run's step logs are kept after its last line
    step_log_ttl: float = setting(7 * 86400.0, check=positive("seconds"))
    #: Prometheus: the port an engine worker serves ``/metrics`` on (its
    #: aggregator child process serves its own on ``metrics_port + 1``);
    #: 0 (the default): none. Several workers on one host need a port each
    #: (``BOSS_METRICS_PORT`` in each one's environment)
    metrics_port: int = setting(0, check=checked(lambda v: 0 <= v < 65535, "must be 0..65534"))
    #: the address those ``/metrics`` listen on (``0.0.0.0``: every
    #: interface, for a Prometheus on another host)
    metrics_address: str = "127.0.0.1"
    #: the log lines of workers, aggregators, participants, launchers and
    #: ``boss web``: ``text`` (the default) or ``json`` (one JSON object per
    #: line: time, level, logger, message, the run and step where known)
    log_format: str = setting(
        "text", check=checked(lambda v: v in ("text", "json"), "must be text or json")
    )
    #: per-dispatch tokens (docs/security.md): a file holding the secret
    #: engine workers sign each dispatched workitem with (at least 16
    #: bytes: ``openssl rand -hex 32``); a reply is applied only if it
    #: carries its workitem's token. Empty, with ``dispatch_key`` empty:
    #: tokens are off. Only engine workers need it (SkyNET does not hand
    #: it to participants)
    dispatch_key_file: str = ""
    #: the same secret written here (prefer ``dispatch_key_file``, or the
    #: ``BOSS_DISPATCH_KEY`` environment variable)
    dispatch_key: str = ""
    #: participants (names, glob patterns, comma or space separated) whose
    #: replies are applied without a dispatch token while tokens are on:
    #: legacy participants that do not send back the workitem they got
    untokened_participants: tuple[str, ...] = setting((), coerce=to_list)
    #: participant registrations sent on the engine's queue (a participant
    #: with ``register = true``): ``true`` applied, ``false`` dead-lettered,
    #: ``auto`` (the default) applied unless dispatch tokens are on (then a
    #: participant could route another's workitems to itself; register with
    #: ``boss register`` or ``skynet install --register`` instead)
    queue_registrations: str = setting(
        "auto",
        check=checked(lambda v: v in ("auto", "true", "false"), "must be auto, true or false"),
    )
    #: RabbitMQ: ``skynet install`` and ``boss register --broker-user``
    #: create a broker user per participant queue that may consume only its
    #: own queue (docs/security.md); ``skynet uninstall`` removes it
    participant_users: bool = False
    #: how those users are made: ``rabbitmqctl`` (on the broker's host) or
    #: the management API's URL with an administrator's credentials
    #: (``http://admin:secret@rabbit:15672``)
    broker_admin: str = "rabbitmqctl"
    #: the store as a user that may make ACL users (``redis://admin:s3cret@
    #: store:6379/0``): ``boss store users --apply`` makes the engine's, the
    #: web UI's and the participants' users with it, and ``skynet install``
    #: a store user for each participant that needs the store
    #: (``engine.store.acl``, docs/security.md); empty: neither
    redis_admin_url: str = ""
    #: the file this was read from, if any
    source: str = setting("", internal=True)

    # -- loading (``engine.settings.Section``: file, environment, overrides) --

    @classmethod
    def has_section(cls, parser: configparser.ConfigParser) -> bool:
        return parser.has_section("boss") or parser.has_section("amqp")

    @classmethod
    def file_values(cls, parser: configparser.ConfigParser) -> dict[str, str]:
        """``[boss]``; SkyNET's ``[boss]`` ``amqp_host``, ``amqp_user``,
        ``amqp_pwd``, ``amqp_vhost`` (or an ``[amqp]`` section with ``host``,
        ``user``, ``pwd``, ``vhost``) as ``broker_url``, unless it is given."""
        values: dict[str, str] = {}
        if parser.has_section("amqp"):
            values["broker_url"] = amqp_section_url(parser["amqp"])
        if parser.has_section("boss"):
            values.update(parser["boss"])
            skynet = {k: values.pop(k) for k in SKYNET_AMQP_KEYS if k in values}
            if skynet and "broker_url" not in parser["boss"]:
                values["broker_url"] = amqp_section_url(
                    {k.removeprefix("amqp_"): v for k, v in skynet.items()}
                )
        return values

    # -- derived -------------------------------------------------------------

    @property
    def step_log_queue(self) -> str:
        """The durable queue participants publish step-log batches to
        (``<engine_queue>.logs``; the aggregator process consumes it)."""
        return f"{self.engine_queue}.logs"

    @property
    def embedded(self) -> bool:
        """Whether the embedded Valkey serves as store or broker."""
        return not self.redis_url or not self.broker_url

    def embedded_config(self) -> dict[str, str]:
        """The embedded Valkey's settings this configuration chooses."""
        return {"appendfsync": self.embedded_fsync}

    def resolved_redis_url(self) -> str:
        """The run store's URL, starting the embedded Valkey if needed; with
        ``redis_ca``/``redis_cert``/``redis_key`` as redis-py's query
        parameters on a TLS URL, and ``redis_wait_replicas`` (when set) as
        ``wait_replicas`` on a Sentinel URL."""
        if self.redis_url:
            return _store_url(
                self.redis_url,
                self.redis_ca,
                self.redis_cert,
                self.redis_key,
                self.redis_wait_replicas,
            )
        from engine.embedded import ensure_embedded

        return ensure_embedded(self.state_dir or None, config=self.embedded_config())

    @property
    def redis_broker(self) -> bool:
        """Whether the broker is kombu's Redis transport (the embedded
        Valkey, ``redis://``, ``redis+socket://``); else RabbitMQ."""
        return not self.broker_url or self.broker_url.startswith(("redis", "bossredis"))

    def resolved_dispatch_lease(self) -> float:
        """``dispatch_lease`` with -1 resolved: 0 (never) unless set; 0
        on RabbitMQ whatever is set (it requeues a delivery exactly when its
        consumer's connection is lost: nothing to recover, and the engine
        cannot see whether a consumer still holds a workitem there)."""
        if not self.redis_broker:
            return 0.0
        return max(0.0, self.dispatch_lease)

    def broker_warnings(self) -> list[str]:
        """What in this configuration lets the broker give a step that a
        participant without heartbeats is working on to another instance
        (logged by engine workers and participants at start)."""
        out: list[str] = []
        if self.redis_broker:
            return out
        if self.dispatch_lease > 0:
            out.append(
                f"dispatch_lease = {self.dispatch_lease:g} is ignored on RabbitMQ (it "
                "loses no delivery; a workitem is dispatched again only when its lease "
                "runs out without heartbeats)"
            )
        if self.consumer_timeout > 0 and self.max_step_time > self.consumer_timeout:
            out.append(
                f"max_step_time ({self.max_step_time:g}s) exceeds RabbitMQ's "
                f"consumer_timeout ({self.consumer_timeout:g}s, as configured here): "
                "RabbitMQ closes the channel of a participant that holds a workitem "
                "that long without sending heartbeats and gives the workitem to another "
                "instance. Raise consumer_timeout in rabbitmq.conf (RabbitMQ 3.10, 3.11: "
                "node-wide, in milliseconds; 3.12 and later also per queue with a "
                "'consumer-timeout' policy) and set consumer_timeout here to match"
            )
        return out

    def resolved_broker_url(self) -> str:
        """The broker's URL, starting the embedded Valkey if needed."""
        if self.broker_url:
            return self.broker_url
        from engine.embedded import ensure_embedded

        url = ensure_embedded(self.state_dir or None, config=self.embedded_config())
        return "redis+socket://" + url.removeprefix("unix://")


def _store_url(url: str, ca: str, cert: str, key: str, wait_replicas: int) -> str:
    """``url`` with the store's TLS files and WAIT setting as query
    parameters (those the URL does not give itself)."""
    scheme = url.partition("://")[0].lower()
    extra = []
    if scheme in ("rediss", "valkeys", "rediss+sentinel", "valkeys+sentinel"):
        extra += [("ssl_ca_certs", ca), ("ssl_certfile", cert), ("ssl_keyfile", key)]
    if scheme.endswith("+sentinel") and wait_replicas >= 0:
        extra.append(("wait_replicas", str(wait_replicas)))
    parts = urlsplit(url)
    have = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    add = [(k, v) for k, v in extra if v and k not in have]
    if not add:
        return url
    query = "&".join(x for x in (parts.query, urlencode(add, safe="/")) if x)
    return urlunsplit(parts._replace(query=query))


def amqp_section_url(section: configparser.SectionProxy | Mapping[str, str]) -> str:
    """``host``, ``user``, ``pwd``, ``vhost`` (an ``[amqp]`` section, or
    SkyNET's ``[boss]`` ``amqp_*`` keys without the prefix) as a broker URL."""
    host = section.get("host", "127.0.0.1")
    user = quote(section.get("user", "guest"), safe="")
    pwd = quote(section.get("pwd", section.get("password", "guest")), safe="")
    vhost = quote(section.get("vhost", "/"), safe="")
    if ":" not in host:
        host += ":5672"
    return f"amqp://{user}:{pwd}@{host}/{vhost}"
