"""``boss doctor``: check an installation and say what to fix.

Each check gives a ``Finding``: its name, ``ok``/``warn``/``fail``, what it
found and, unless ok, what to do about it (a command or a configuration
key). Nothing is created or changed: queues and exchanges are declared
passively, the dead-letter queues are only counted, the embedded store is
not started when it is not running.

==================  =====================================================================
check               what
==================  =====================================================================
``config``          the configuration loads, and from which file
``config.broker``   what in it lets the broker give a step to another instance
``store``           PING with ``redis_url`` (TLS with ``rediss://``); its version
``store.memory``    used memory against ``maxmemory``; the eviction policy
``store.disk``      the embedded store: free space of its directory, AOF writes
``broker``          a connection with ``broker_url``'s credentials (RabbitMQ or the
                    Redis transport, TLS with ``amqps://``)
``topology``        the engine, dead-letter, trace and step-log queues, the control and
                    trace exchanges (RabbitMQ: passive declarations; the Redis
                    transport: the trace queue's binding)
``workers``         engine workers with a live heartbeat, their versions; the engine
                    queue's consumers and depth
``aggregator``      an aggregator consumes the trace queue; events waiting (lag)
``steplogs``        step-log batches waiting
``deadletters``     messages waiting on the engine's dead-letter queue
``deadletters.trace`` events waiting on the trace dead-letter queue
``participants``    registered participants whose queue has no consumer
==================  =====================================================================

Checks that need the store or the broker are left out when it does not
answer (its own finding says why). ``Report.exit_code``: 0 all ok, 1 any
fail, 2 warnings only.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from engine import __version__
from engine.config import Config, ConfigError, config_paths

__all__ = ["FAIL", "OK", "WARN", "Finding", "Report", "diagnose"]

OK, WARN, FAIL = "ok", "warn", "fail"
_RANK = {OK: 0, WARN: 1, FAIL: 2}

#: events waiting on the trace queue above which the aggregators lag
TRACE_LAG = 1000
#: step-log batches waiting above which the writers lag
STEPLOG_LAG = 1000
#: messages waiting on the engine's queue above which the workers lag
ENGINE_LAG = 1000
#: the embedded store's directory: below this free space, fail; below WARN, warn
DISK_FAIL = 100 << 20
DISK_WARN = 1 << 30
#: used/maxmemory: warn at, fail at
MEMORY_WARN = 0.8
MEMORY_FAIL = 0.95


@dataclass
class Finding:
    """One check's verdict."""

    check: str
    status: str
    found: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Every finding, in the order checked."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: str, found: str, fix: str = "", **data: Any) -> Finding:
        finding = Finding(check, status, found, fix if status != OK else "", data)
        self.findings.append(finding)
        return finding

    @property
    def status(self) -> str:
        """The worst status found."""
        return max((f.status for f in self.findings), key=_RANK.__getitem__, default=OK)

    @property
    def exit_code(self) -> int:
        """0: all ok; 1: any fail; 2: warnings only."""
        return {OK: 0, FAIL: 1, WARN: 2}[self.status]

    def get(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "version": __version__,
            "findings": [asdict(f) for f in self.findings],
        }


def diagnose(
    path: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    **overrides: Any,
) -> Report:
    """Run every check on the configuration ``Config.load(path, environ,
    **overrides)`` reads; the report."""
    report = Report()
    try:
        config = Config.load(path, environ=environ, **overrides)
    except ConfigError as exc:
        report.add(
            "config",
            FAIL,
            f"the configuration does not load: {exc}",
            "correct the key it names (docs/configuration.md lists every key)",
        )
        return report
    if config.source:
        report.add("config", OK, f"loaded from {config.source}", source=config.source)
    else:
        searched = ", ".join(str(p) for p in config_paths(environ))
        report.add(
            "config",
            OK,
            f"no configuration file ({searched}): defaults and BOSS_* variables",
            source="",
        )
    for warning in config.broker_warnings():
        report.add("config.broker", WARN, warning, "see docs/configuration.md, consumer_timeout")
    _check_tokens(config, report)
    _Doctor(config, report, timeout).run()
    return report


def _check_tokens(config: Config, report: Report) -> None:
    """Whether replies must carry their dispatch token (``engine.tokens``),
    and whether the key can be read (a worker would not start)."""
    from engine.tokens import read_key

    try:
        key = read_key(key=config.dispatch_key, key_file=config.dispatch_key_file)
    except ConfigError as exc:
        report.add(
            "config.tokens",
            FAIL,
            f"the dispatch key cannot be read: {exc}",
            "make dispatch_key_file readable by the workers (docs/security.md)",
        )
        return
    if key is None:
        report.add(
            "config.tokens",
            OK,
            "dispatch tokens off: whoever can publish to the engine queue can reply for any "
            "participant (docs/security.md: dispatch_key_file)",
            enabled=False,
        )
        return
    untokened = ", ".join(config.untokened_participants) or "none"
    report.add(
        "config.tokens",
        OK,
        f"dispatch tokens on: a reply without its workitem's token is dead-lettered "
        f"(participants allowed without: {untokened})",
        enabled=True,
    )


class _Doctor:
    def __init__(self, config: Config, report: Report, timeout: float) -> None:
        self.config = config
        self.report = report
        self.timeout = timeout
        self.embedded: Any = None
        if config.embedded:
            from engine.embedded import EmbeddedValkey

            self.embedded = EmbeddedValkey(config.state_dir or None)
        self.client: Any = None
        self.store: Any = None
        self.connection: Any = None
        self.rabbit = not config.redis_broker

    def add(self, check: str, status: str, found: str, fix: str = "", **data: Any) -> None:
        self.report.add(check, status, found, fix, **data)

    def run(self) -> None:
        try:
            if self.check_store():
                self.check_workers()
            if self.check_broker():
                self.check_topology()
                self.check_engine_queue()
                self.check_aggregator()
                self.check_deadletters()
                if self.store is not None:
                    self.check_participants()
        finally:
            if self.connection is not None:
                self.connection.release()
            if self.client is not None:
                self.client.close()

    # -- the store -------------------------------------------------------------------

    def check_store(self) -> bool:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from engine.store import RedisStore
        from engine.store.connection import client_for, is_sentinel, probe_sentinels, sanitize

        config = self.config
        options: dict[str, Any] = {
            "socket_connect_timeout": self.timeout,
            "socket_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),  # a check answers now, waits out no failover
        }
        if config.redis_url:
            url = config.resolved_redis_url()  # with redis_ca/redis_cert/redis_key
            shown = sanitize(config.redis_url)
            where = f"redis_url {shown}"
            try:
                self.client, _ = client_for(url, **options)
            except ValueError as exc:
                self.add(
                    "store",
                    FAIL,
                    f"redis_url is not a store URL: {exc}",
                    "set [boss] redis_url to redis://[:PASSWORD@]HOST:6379/DB, rediss://... "
                    "(TLS), redis+sentinel://HOST:26379[,HOST:26379...]/SERVICE or "
                    "unix:///PATH",
                )
                return False
        else:
            server = self.embedded
            where = f"the embedded store ({server.socket_path})"
            if not server.is_running():
                self.add(
                    "store",
                    FAIL,
                    f"the embedded store is not running: nothing answers on {server.socket_path}",
                    "start it: `systemctl start boss-valkey` (packages), or any `boss` command "
                    f"that needs the store starts it (`boss worker`); its log: {server.log_path}",
                    state_dir=str(server.state_dir),
                )
                return False
            self.client = redis.Redis(unix_socket_path=str(server.socket_path), **options)
        tls = (config.redis_url or "").startswith(("rediss", "valkeys"))
        try:
            self.client.ping()
            info = self.client.info()
        except redis.AuthenticationError as exc:
            self.add(
                "store",
                FAIL,
                f"{where} refused the credentials: {exc}",
                "correct the password (and user) in [boss] redis_url: "
                "redis://USER:PASSWORD@HOST:6379/0",
            )
            return False
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                self.add(
                    "store",
                    FAIL,
                    f"{where} wants credentials: {exc}",
                    "put the password in [boss] redis_url: redis://:PASSWORD@HOST:6379/0",
                )
            else:
                self.add("store", FAIL, f"{where} answered PING with an error: {exc}", "")
            return False
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            fix = (
                "is the server running and reachable from here? "
                f"`redis-cli -u '{shown}' ping`; correct [boss] redis_url"
                if config.redis_url
                else "restart it: `systemctl restart boss-valkey`"
            )
            cause = str(exc)
            if is_sentinel(config.redis_url) and "No master found" in cause:
                # redis-py keeps each Sentinel's answer to itself: ask them
                cause = "; ".join(probe_sentinels(url, timeout=self.timeout))
            if "CERTIFICATE_VERIFY_FAILED" in cause or "certificate" in cause.lower():
                if "mismatch" in cause.lower() or "hostname" in cause.lower():
                    what = "its certificate is not valid for that host name"
                    fix = (
                        "connect by a host name the server's certificate names (in "
                        "[boss] redis_url), or give the server a certificate naming this one"
                    )
                else:
                    what = "its certificate does not chain to a CA trusted here"
                    fix = (
                        "set [boss] redis_ca to the CA certificate (PEM) that signed the "
                        f"server's certificate (now: {config.redis_ca or 'the system CAs'})"
                    )
                self.add("store", FAIL, f"{where}: TLS verification failed, {what}: {cause}", fix)
                return False
            if is_sentinel(config.redis_url) and "master" in cause.lower():
                fix = (
                    "do the Sentinels know the service? `redis-cli -p 26379 sentinel "
                    "get-master-addr-by-name SERVICE`; " + fix
                )
            if tls or "SSL" in str(exc) or "certificate" in str(exc):
                fix = (
                    "TLS: the server must listen with TLS on that port, and its certificate "
                    "be trusted here (rediss://HOST:6380/0?ssl_ca_certs=/path/ca.pem, or "
                    "ssl_cert_reqs=none to test); " + fix
                )
            self.add("store", FAIL, f"{where} does not answer: {cause}", fix)
            return False
        version = info.get("valkey_version") or info.get("redis_version", "?")
        self.add(
            "store",
            OK,
            f"{where} answers PING ({'TLS, ' if tls else ''}server {version})",
            version=version,
            tls=tls,
        )
        self.store = RedisStore(self.client, prefix=config.key_prefix)
        self._memory(info)
        if self.embedded is not None:
            self._disk(info)
        return True

    def _memory(self, info: dict[str, Any]) -> None:
        used = int(info.get("used_memory", 0))
        limit = int(info.get("maxmemory", 0))
        policy = str(info.get("maxmemory_policy", "noeviction"))
        data = {"used": used, "maxmemory": limit, "policy": policy}
        if policy != "noeviction":
            self.add(
                "store.memory",
                FAIL,
                f"maxmemory-policy is {policy}: the server may evict runs to make room",
                "`CONFIG SET maxmemory-policy noeviction` and set it in the server's "
                "configuration file (a run store must never drop a key)",
                **data,
            )
            return
        if not limit:
            self.add("store.memory", OK, f"{_size(used)} used (no maxmemory)", **data)
            return
        share = used / limit
        found = f"{_size(used)} used of maxmemory {_size(limit)} ({share:.0%})"
        fix = (
            "raise maxmemory (`CONFIG SET maxmemory ...` and the configuration file), or "
            "remove finished runs (`boss ps --status finished`, the web UI's clean-up); "
            "at the limit every write fails"
        )
        if share >= MEMORY_FAIL:
            self.add("store.memory", FAIL, found, fix, **data)
        elif share >= MEMORY_WARN:
            self.add("store.memory", WARN, found, fix, **data)
        else:
            self.add("store.memory", OK, found, **data)

    def _disk(self, info: dict[str, Any]) -> None:
        directory = self.embedded.state_dir
        try:
            usage = shutil.disk_usage(directory)
        except OSError as exc:
            self.add("store.disk", WARN, f"cannot read the free space of {directory}: {exc}", "")
            return
        data = {"directory": str(directory), "free": usage.free, "total": usage.total}
        found = f"{_size(usage.free)} free of {_size(usage.total)} in {directory}"
        aof = info.get("aof_last_write_status", "ok")
        if aof != "ok":
            self.add(
                "store.disk",
                FAIL,
                f"the embedded store cannot write its append-only file ({aof}); {found}",
                f"free space in {directory}, then `systemctl restart boss-valkey`; its log: "
                f"{self.embedded.log_path}",
                **data,
            )
            return
        fix = (
            f"free space in {directory} (or move [boss] state_dir to a larger disk): when "
            "the append-only file cannot grow, every write of the store fails"
        )
        if usage.free < DISK_FAIL:
            self.add("store.disk", FAIL, found, fix, **data)
        elif usage.free < DISK_WARN or usage.free < usage.total * 0.05:
            self.add("store.disk", WARN, found, fix, **data)
        else:
            self.add("store.disk", OK, found, **data)

    # -- engine workers -----------------------------------------------------------------

    def check_workers(self) -> None:
        try:
            live = self.store.engines()
        except Exception as exc:
            self.add("workers", FAIL, f"cannot read the workers' heartbeats: {exc}", "")
            return
        if not live:
            self.add(
                "workers",
                FAIL,
                "no engine worker is alive (no heartbeat in the store under "
                f"key_prefix {self.config.key_prefix!r}): nothing handles the engine's queue",
                "start one: `boss worker`, or `systemctl start boss-worker@1` (packages); "
                "`journalctl -u 'boss-worker@*'` says why one stopped",
                workers=[],
            )
            return
        versions = sorted({str(w.get("version", "unknown")) for w in live})
        hosts = sorted({f"{w.get('host')}:{w.get('pid')}" for w in live})
        data = {"workers": live, "versions": versions}
        found = f"{len(live)} engine worker(s) alive ({', '.join(hosts)}); version(s) " + ", ".join(
            versions
        )
        if len(versions) > 1 or versions[0] != __version__:
            self.add(
                "workers",
                WARN,
                found + f"; this boss is {__version__}",
                "upgrade every host to one version and restart the workers "
                "(`systemctl restart 'boss-worker@*'`)",
                **data,
            )
        else:
            self.add("workers", OK, found, **data)

    # -- the broker -------------------------------------------------------------------

    def broker_url(self) -> str:
        if self.config.broker_url:
            return self.config.broker_url
        return "redis+socket://" + str(self.embedded.socket_path)

    def check_broker(self) -> bool:
        from engine.broker import connect, tls_failure, tls_options

        url = self.broker_url()
        shown = maybe_sanitize_url(url)
        kind = "RabbitMQ" if self.rabbit else "the Redis transport"
        try:
            tls = url.startswith(("amqps://", "rediss://")) or "ssl=" in url
            tls = tls or bool(tls_options(self.config, url))
            conn = connect(self.config, url=url)
            conn.connect_timeout = self.timeout
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=self.timeout)
        except Exception as exc:
            failure = tls_failure(exc) if self.rabbit else None
            if failure is not None:  # what failed in the handshake, and what to check
                self.add(
                    "broker",
                    FAIL,
                    f"cannot connect to {kind} at {shown}: {failure[0]}",
                    failure[1],
                    tls=True,
                )
                return False
            self.add("broker", FAIL, f"cannot connect to {kind} at {shown}: {exc}", self._fix(exc))
            return False
        self.connection = conn
        version = ""
        if self.rabbit:
            props = getattr(conn.connection, "server_properties", {}) or {}
            version = props.get("version", "")
            version = version.decode() if isinstance(version, bytes) else str(version)
        self.add(
            "broker",
            OK,
            f"connected to {kind} at {shown}"
            + (f" (RabbitMQ {version})" if version else "")
            + (" with TLS" if tls else ""),
            transport="amqp" if self.rabbit else "redis",
            tls=tls,
        )
        return True

    def _fix(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if not self.config.broker_url:
            return "the embedded broker is the embedded store: see the store finding"
        if not self.rabbit:
            return (
                "is the Redis server of [boss] broker_url running and reachable from here? "
                "Start it, or correct broker_url"
            )
        if "ACCESS_REFUSED" in text or "AccessRefused" in text or "authentication" in text.lower():
            return (
                "correct the user and password in [boss] broker_url "
                "(`rabbitmqctl authenticate_user USER PASSWORD` tells whether they are right)"
            )
        if "NOT_ALLOWED" in text or "vhost" in text.lower():
            return (
                "create the vhost and let the user in: `rabbitmqctl add_vhost VHOST` and "
                "`rabbitmqctl set_permissions -p VHOST USER '.*' '.*' '.*'`, or correct "
                "the vhost at the end of [boss] broker_url"
            )
        if "SSL" in text or "certificate" in text.lower():
            return (
                "TLS: amqps:// needs RabbitMQ's TLS listener (port 5671) and a certificate "
                "trusted here; correct [boss] broker_url"
            )
        return (
            "is the broker running and reachable from here? Start it (`systemctl start "
            "rabbitmq-server`), or correct the host and port in [boss] broker_url"
        )

    def _info(self, name: str) -> Any:
        from engine.broker import queue_info

        return queue_info(self.connection, name)

    def check_topology(self) -> None:
        """RabbitMQ: the engine's queue (a worker declares it), the trace
        exchange and queue (event publishers and aggregators), the step-log
        queue (participants, the aggregator process) must be there; the
        dead-letter queues and the control exchange are declared at their
        first use (a dead letter, a participant's start), so their absence
        is only said."""
        config = self.config
        if not self.rabbit:
            self._redis_topology()
            return
        required = [("queue", config.engine_queue)]
        if config.legacy_reply_queue:
            required.append(("queue", config.legacy_reply_queue))
        if config.events:
            required += [("exchange", config.event_exchange), ("queue", config.trace_queue)]
        if config.step_logs:
            required.append(("queue", config.step_log_queue))
        later = [
            ("queue", config.deadletter_queue),
            ("queue", config.trace_deadletter_queue),
            ("exchange", config.control_exchange),
        ]
        missing = [f"{kind} {name}" for kind, name in required if not self._exists(kind, name)]
        unused = [f"{kind} {name}" for kind, name in later if not self._exists(kind, name)]
        declared = len(required) + len(later) - len(missing) - len(unused)
        found = f"{declared} queues and exchanges declared"
        if unused:
            found += "; not yet used (declared at first use): " + ", ".join(unused)
        if not missing:
            self.add("topology", OK, found, missing=[], unused=unused)
            return
        self.add(
            "topology",
            FAIL if f"queue {config.engine_queue}" in missing else WARN,
            "not declared on the broker: " + ", ".join(missing) + "; " + found,
            "start an engine worker (`boss worker`): it declares the engine's queue, the "
            "trace exchange and queue, and (its aggregator process) the step-log queue; "
            "`boss aggregator` declares the trace queue too",
            missing=missing,
            unused=unused,
        )

    def _exists(self, kind: str, name: str) -> bool:
        if kind == "queue":
            return self._info(name).messages is not None
        return self._exchange_exists(name)

    def _exchange_exists(self, name: str) -> bool:
        try:
            with self.connection.channel() as channel:
                channel.exchange_declare(name, "topic", durable=True, passive=True)
        except self.connection.channel_errors as exc:
            if "NOT_FOUND" in str(exc) or "404" in str(exc):
                return False
            raise
        return True

    def _redis_topology(self) -> None:
        """The Redis transport: a queue is a list (there while it holds
        messages), an exchange its bindings; the trace queue must be bound
        to the event exchange or events are dropped."""
        with self.connection.channel() as channel:
            members = channel.client.smembers(f"_kombu.binding.{self.config.event_exchange}")
        bound = any(
            (m.decode() if isinstance(m, bytes) else m).endswith(self.config.trace_queue)
            for m in members
        )
        if bound or not self.config.events:
            self.add(
                "topology",
                OK,
                "the Redis transport: queues need no declaration; the trace queue "
                f"{self.config.trace_queue} is bound to {self.config.event_exchange}",
            )
        else:
            self.add(
                "topology",
                WARN,
                f"the trace queue {self.config.trace_queue} is not bound to the exchange "
                f"{self.config.event_exchange}: events published now are lost",
                "start an engine worker (`boss worker`) or `boss aggregator`: either binds it",
            )

    # -- the aggregator, step logs, dead letters ---------------------------------------------

    def check_aggregator(self) -> None:
        config = self.config
        trace = self._info(config.trace_queue)
        waiting = trace.messages or 0
        heartbeats = self.report.get("workers")
        live = heartbeats.data.get("workers", []) if heartbeats else []
        running = [w for w in live if w.get("aggregator")]
        data = {"waiting": waiting, "consumers": trace.consumers}
        if trace.consumers is not None:
            consumers = trace.consumers
            who = f"{consumers} consumer(s) on {config.trace_queue}"
        else:
            consumers = len(running)
            who = (
                f"{consumers} engine worker(s) run an aggregator (the Redis transport does not "
                "count consumers: a `boss aggregator` elsewhere is not seen)"
            )
        fix_none = (
            "run one: an engine worker with [boss] trace_threads >= 1 (the default) runs "
            "one, or `boss aggregator` / `systemctl start boss-aggregator`"
        )
        if not config.events and waiting == 0:
            self.add("aggregator", OK, f"events = false; {who}", **data)
        elif consumers == 0:
            self.add(
                "aggregator",
                WARN if trace.consumers is None or waiting == 0 else FAIL,
                f"no aggregator consumes {config.trace_queue}; {waiting} event message(s) wait",
                fix_none,
                **data,
            )
        elif waiting > TRACE_LAG:
            self.add(
                "aggregator",
                WARN,
                f"{who}; lagging: {waiting} event message(s) wait",
                "add aggregator threads ([boss] trace_threads) or `boss aggregator` "
                "processes; a store that is slow to write also shows here",
                **data,
            )
        else:
            self.add("aggregator", OK, f"{who}; {waiting} event message(s) wait", **data)
        if not config.step_logs:
            return
        logs = self._info(config.step_log_queue)
        waiting = logs.messages or 0
        found = f"{waiting} step-log batch(es) wait on {config.step_log_queue}"
        if waiting > STEPLOG_LAG:
            self.add(
                "steplogs",
                WARN,
                found + " (the writers lag)",
                "the aggregator process writes them: see the aggregator finding",
                waiting=waiting,
            )
        else:
            self.add("steplogs", OK, found, waiting=waiting)

    def check_deadletters(self) -> None:
        config = self.config
        for check, queue, command in (
            ("deadletters", config.deadletter_queue, "boss deadletters"),
            ("deadletters.trace", config.trace_deadletter_queue, "boss trace deadletters"),
        ):
            waiting = self._info(queue).messages or 0
            if waiting:
                self.add(
                    check,
                    WARN,
                    f"{waiting} dead letter(s) wait on {queue}",
                    f"`{command}` lists them with the reason; then `{command} reinject ID` "
                    f"(after a fix) or `{command} drop ID`",
                    waiting=waiting,
                )
            else:
                self.add(check, OK, f"no dead letters on {queue}", waiting=0)

    def check_engine_queue(self) -> None:
        config = self.config
        engine = self._info(config.engine_queue)
        heartbeats = self.report.get("workers")
        if engine.consumers == 0 and heartbeats is not None and heartbeats.status != FAIL:
            self.add(
                "workers.queue",
                FAIL,
                f"engine workers are alive but none consumes {config.engine_queue} "
                f"({engine.messages or 0} message(s) wait)",
                "look at the workers' logs (`journalctl -u 'boss-worker@*'`) and restart them",
            )
        elif (engine.messages or 0) > ENGINE_LAG:
            self.add(
                "workers.queue",
                WARN,
                f"{engine.messages} message(s) wait on {config.engine_queue}",
                "add engine workers or [boss] engine_threads",
            )

    # -- participants -----------------------------------------------------------------

    def check_participants(self) -> None:
        try:
            regs = self.store.participants()
        except Exception as exc:
            self.add("participants", FAIL, f"cannot read the registrations: {exc}", "")
            return
        if not regs:
            self.add("participants", OK, "no participant registered")
            return
        by_queue: dict[str, list[str]] = {}
        for r in regs:
            by_queue.setdefault(r.queue, []).append(r.pattern)
        idle: list[dict[str, Any]] = []
        for queue, patterns in by_queue.items():
            info = self._info(queue)
            never = self.rabbit and info.messages is None  # not even declared
            if never or info.consumers == 0 or (info.consumers is None and info.messages):
                idle.append(
                    {
                        "queue": queue,
                        "patterns": patterns,
                        "messages": info.messages,
                        "consumers": info.consumers,
                    }
                )
        if not idle:
            self.add(
                "participants",
                OK,
                f"{len(regs)} registration(s) on {len(by_queue)} queue(s), each consumed"
                + (
                    ""
                    if self.rabbit
                    else " or empty (the Redis transport does not count consumers)"
                ),
            )
            return
        parts = []
        for q in idle:
            waiting = q["messages"] or 0
            if self.rabbit and q["messages"] is None:
                parts.append(f"{q['queue']} does not exist (its participant never started)")
            elif q["consumers"] == 0:
                parts.append(f"{q['queue']} has no consumer ({waiting} workitem(s) wait)")
            else:
                parts.append(f"{q['queue']}: {waiting} workitem(s) wait, consumer unknown")
        patterns = ", ".join(p for q in idle for p in q["patterns"])
        self.add(
            "participants",
            WARN,
            "; ".join(parts),
            "start the participant (`boss-participant CONFIG.ini`, or its SkyNET pool: "
            f"`skynet status`), or unregister what is gone: `boss unregister PATTERN` "
            f"({patterns})",
            idle=idle,
        )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
