"""The federation settings: a ``[federation]`` section of the same INI file
as ``[boss]``, with ``BOSS_FEDERATION_<KEY>`` environment variables over
it, and one ``[federation.peer.<name>]`` section per peer site::

    [federation]
    site = odl                      ; default: [boss] eiffel_domain
    bind = 127.0.0.1:8090           ; where ``boss federate serve`` listens
    peers = opnfv
    signing_key = odl.key.pem       ; sign the Eiffel events sent to peers (meta.security)

    [federation.peer.opnfv]
    domain = opnfv                  ; its meta.source.domainId (default: the name)
    url = http://opnfv.example:8090/federation/v1/events
    secret = a-shared-secret        ; HMAC-SHA256 of each request body, both ways
    public_key = opnfv.pub.pem      ; its events' Eiffel meta.security signatures
    ; require_signature = true      ; default: true when public_key is set
    ; what this site sends it and accepts from it: the trigger filter language
    publish_type = ArtifactCreated, ArtifactPublished
    publish_data = identity=~^pkg:generic/odl
    accept_type = CompositionDefined, ConfidenceLevelModified
    accept_links = SUBJECT=*

A filter is a ``type`` list, ``data`` lines (``path=value``, ``path=~regex``,
one per line or ``;``-separated) and ``links`` (``TYPE=target`` or
``TYPE=*``, ``,``-separated): ``engine/trace/triggers.py``'s language. An
empty filter lets everything through (of this site's own domain, outbound).

Key files (``signing_key``, a peer's ``public_key``) are PEM files; a
relative path is taken from the configuration file's directory. They are
read when the settings are loaded: a missing or wrong one is a
``ConfigError`` naming the key (``engine/trace/signing.py`` signs and
verifies).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from engine.config import Config
from engine.settings import ConfigError, Section, at_least, positive, read_ini, setting

if TYPE_CHECKING:
    from engine.trace.signing import Signer, Verifier

__all__ = ["FederationSettings", "PeerFilter", "PeerSettings", "load_federation"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _to_data(raw: str) -> tuple[str, ...]:
    """``path=value`` items, one per line or ``;``-separated."""
    return tuple(p.strip() for p in re.split(r"[\n;]", raw) if p.strip())


def _pairs(items: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class PeerFilter:
    """One direction's filter (a trigger filter without a process)."""

    type: tuple[str, ...] = ()
    data: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.type or self.data or self.links)

    def as_dict(self) -> dict[str, Any]:
        return {"type": list(self.type), "data": dict(self.data), "links": dict(self.links)}


@dataclass(frozen=True, slots=True)
class PeerSettings(Section):
    """One peer site (``[federation.peer.<name>]``)."""

    SECTION: ClassVar[str] = "federation.peer"
    UNKNOWN: ClassVar[str] = "unknown peer key"

    #: the peer's name (its section's), sent as ``X-Boss-Site``
    name: str = setting("", internal=True)
    #: the Eiffel ``meta.source.domainId`` its events must carry (default: the name)
    domain: str = ""
    #: its bridge's CloudEvents endpoint (``boss federate serve``'s
    #: ``/federation/v1/events``); empty: nothing is sent to it (it may
    #: still send to this site)
    url: str = ""
    #: its RabbitMQ (for a shovel between the brokers, ``docs/federation.md``);
    #: not used by the bridge
    amqp_url: str = ""
    #: HMAC-SHA256 key shared with the peer: requests both ways carry
    #: ``X-Boss-Signature: sha256=<hex of the body's HMAC>``
    secret: str = ""
    #: a bearer token shared with the peer (``Authorization: Bearer``), for
    #: producers that cannot sign (a CDEvents tool)
    token: str = ""
    #: what this site sends the peer
    publish_type: tuple[str, ...] = ()
    publish_data: tuple[str, ...] = setting((), coerce=_to_data)
    publish_links: tuple[str, ...] = ()
    #: what this site accepts from the peer
    accept_type: tuple[str, ...] = ()
    accept_data: tuple[str, ...] = setting((), coerce=_to_data)
    accept_links: tuple[str, ...] = ()
    #: how events are sent: ``structured`` (batches,
    #: ``application/cloudevents-batch+json``) or ``binary`` (one event a
    #: request, ``ce-*`` headers)
    mode: str = "structured"
    #: ``http`` (the bridge POSTs to ``url``) or ``shovel`` (both sites run
    #: RabbitMQ: the bridge puts the selected events on
    #: ``<queue_prefix>.<peer>.ready`` and a RabbitMQ shovel moves them to
    #: the peer's ``<in_queue_prefix>.<this site>``, ``docs/federation.md``)
    transport: str = "http"
    #: a PEM file with the peer's public key (or keys, while it changes
    #: keys): its Eiffel events' ``meta.security.integrityProtection`` is
    #: verified on arrival, and an event whose ``publicKey`` is another
    #: key is refused
    public_key: str = ""
    #: refuse the peer's events that are not signed (default: true when
    #: ``public_key`` is set; false lets unsigned ones in, a signed one is
    #: still verified)
    require_signature: bool | None = None

    @property
    def site_domain(self) -> str:
        return self.domain or self.name

    @property
    def signature_required(self) -> bool:
        """Whether every event of this peer must carry a good signature."""
        if self.require_signature is None:
            return bool(self.public_key)
        return self.require_signature

    def verifier(self) -> Verifier | None:
        """The ``engine.trace.signing.Verifier`` of ``public_key`` (None without one)."""
        if not self.public_key:
            return None
        from engine.trace import signing

        where = f"[federation.peer.{self.name}] public_key = {self.public_key!r}"
        try:
            return signing.Verifier.from_file(self.public_key, name=f"peer {self.name}")
        except signing.SignatureError as exc:
            why = str(exc).removeprefix(f"{self.public_key}: ")
            raise ConfigError(f"{where}: {why}", "public_key") from None

    def _filter(self, direction: str) -> PeerFilter:
        where = f"[federation.peer.{self.name}] {direction}"
        return PeerFilter(
            type=tuple(getattr(self, f"{direction}_type")),
            data=_pairs(getattr(self, f"{direction}_data"), f"{where}_data"),
            links=_pairs(getattr(self, f"{direction}_links"), f"{where}_links"),
        )

    @property
    def publish(self) -> PeerFilter:
        return self._filter("publish")

    @property
    def accept(self) -> PeerFilter:
        return self._filter("accept")

    def check(self) -> None:
        """A ``ConfigError`` naming what is wrong with this peer."""
        where = f"[federation.peer.{self.name}]"
        if not _NAME.match(self.name):
            raise ConfigError(f"{where}: a peer name is letters, digits, '.', '_', '-'")
        if not (self.secret or self.token) and self.transport == "http":
            raise ConfigError(
                f"{where}: neither secret nor token: a peer must authenticate", "secret"
            )
        if self.transport not in ("http", "shovel"):
            raise ConfigError(
                f"{where} transport = {self.transport!r}: http or shovel", "transport"
            )
        if self.mode not in ("structured", "binary"):
            raise ConfigError(f"{where} mode = {self.mode!r}: structured or binary", "mode")
        if self.require_signature and not self.public_key:
            raise ConfigError(
                f"{where}: require_signature = true without a public_key to verify with",
                "require_signature",
            )
        self.publish, self.accept  # noqa: B018  # the filters parse
        self.verifier()  # the key file reads


@dataclass(frozen=True, slots=True)
class FederationSettings(Section):
    SECTION: ClassVar[str] = "federation"
    ENV_PREFIX: ClassVar[str] = "BOSS_FEDERATION_"
    MISSING_OK: ClassVar[bool] = True

    #: this site's name: its Eiffel ``meta.source.domainId`` (default: ``[boss] eiffel_domain``)
    site: str = ""
    #: where ``boss federate serve`` listens (``host:port``)
    bind: str = "127.0.0.1:8090"
    #: the peer sites (``,``-separated names; each has a ``[federation.peer.<name>]``)
    peers: tuple[str, ...] = ()
    #: the durable outbound queues are ``<queue_prefix>.<peer>``, bound to
    #: the trace exchange: a peer that is down gets what it missed later
    queue_prefix: str = "boss.federation.out"
    #: peers with ``transport = shovel``: their events arrive (moved by the
    #: shovel) on ``<in_queue_prefix>.<peer>`` of this site's broker
    in_queue_prefix: str = "boss.federation.in"
    #: events sent in one request (structured mode)
    batch: int = setting(200, check=at_least(1))
    #: seconds a partial batch waits for more
    linger: float = setting(0.05, check=positive())
    #: a request's timeout, seconds
    timeout: float = setting(10.0, check=positive())
    #: the first retry's delay after a failed delivery (doubles each time up to ``retry_max``)
    retry_initial: float = setting(0.5, check=positive())
    retry_max: float = setting(30.0, check=positive())
    #: the largest request body accepted, bytes
    max_body: int = setting(16 * 1024 * 1024, check=positive())
    #: a PEM file with this site's private key (RSA or EC): the bridge signs
    #: each Eiffel event it sends to a peer (``meta.security``); empty: unsigned
    signing_key: str = ""
    #: the signatures' ``alg`` (``RS256``, ``PS256``, ``ES256``, ... ``ES512``);
    #: default: ``RS256`` for an RSA key, ``ES256/384/512`` by an EC key's curve
    signing_alg: str = ""
    #: ``meta.security.authorIdentity`` (a distinguished name); default ``CN=<site>``
    signing_identity: str = ""
    #: the peers, loaded from their sections (``load_federation``)
    peer_settings: tuple[PeerSettings, ...] = setting((), internal=True)
    source: str = setting("", internal=True)

    def site_name(self, config: Config) -> str:
        return self.site or config.eiffel_domain

    def signer(self, config: Config) -> Signer | None:
        """The ``engine.trace.signing.Signer`` of ``signing_key`` (None without one)."""
        if not self.signing_key:
            return None
        from engine.trace import signing

        identity = self.signing_identity or f"CN={self.site_name(config)}"
        try:
            return signing.Signer.from_file(self.signing_key, identity, self.signing_alg or None)
        except signing.SignatureError as exc:
            key = "signing_key" if isinstance(exc, signing.KeyFileError) else "signing_alg"
            if not self.signing_alg:
                key = "signing_key"
            why = str(exc).removeprefix(f"{self.signing_key}: ")
            raise ConfigError(f"[federation] {key} = {getattr(self, key)!r}: {why}", key) from None

    def peer(self, name: str) -> PeerSettings | None:
        return next((p for p in self.peer_settings if p.name == name), None)

    def queue_name(self, peer: PeerSettings) -> str:
        return f"{self.queue_prefix}.{peer.name}"

    def ready_queue_name(self, peer: PeerSettings) -> str:
        """A shovel peer's filtered events, for the shovel to move."""
        return f"{self.queue_prefix}.{peer.name}.ready"

    def in_queue_name(self, peer: PeerSettings) -> str:
        """Where a shovel peer's events arrive on this site's broker."""
        return f"{self.in_queue_prefix}.{peer.name}"


def load_federation(
    config: Config | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    peers: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> FederationSettings:
    """The ``[federation]`` section and its peers' sections (the file
    ``config`` was read from unless ``path``). ``peers``: peer sections
    given as mappings (name -> keys), over or instead of the file's."""
    if path is None and config is not None and config.source:
        path = config.source
    settings = FederationSettings.from_file(path, environ=environ, **overrides)
    parser = read_ini(settings.source) if settings.source else None
    settings = settings.replace(signing_key=_beside(settings.signing_key, settings.source))
    names = list(settings.peers)
    given = dict(peers or {})
    for name in given:
        if name not in names:
            names.append(name)
    loaded = []
    for name in names:
        section = f"federation.peer.{name}"
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        if parser is not None and parser.has_section(section):
            values.update(parser[section])
            origin.update(dict.fromkeys(parser[section], f"{settings.source}: [{section}]"))
        elif name not in given:
            raise ConfigError(f"[federation] peers names {name!r}: no [{section}] section")
        values.update(given.get(name) or {})
        peer = PeerSettings.from_mapping(values, origin).replace(name=name)
        peer = peer.replace(public_key=_beside(peer.public_key, settings.source))
        peer.check()
        loaded.append(peer)
    settings = settings.replace(peer_settings=tuple(loaded), peers=tuple(names))
    if config is not None:
        settings.signer(config)  # the key file reads and fits signing_alg
    return settings


def _beside(path: str, source: str) -> str:
    """A key file's path: a relative one from the configuration file's directory."""
    if not path or not source or os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(source)), path)
