"""The ``[federation]`` section and its peers, and the inbound trust rules
(no broker: the dead letters are collected, the graph is a stub)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from engine.config import Config
from engine.federation import (
    FederationSettings,
    Inbound,
    PeerSettings,
    Sender,
    load_federation,
)
from engine.settings import ConfigError
from engine.trace import cdevents, cloudevents, eiffel
from tests.trace.conformance import CONFORMANCE

INI = """[boss]
eiffel_domain = odl

[federation]
peers = opnfv, tekton
bind = 127.0.0.1:9999

[federation.peer.opnfv]
url = http://opnfv.example/federation/v1/events
secret = s3cret
publish_type = ArtifactCreated
publish_data = identity=~^pkg:generic/odl
  name=netvirt
accept_type = ConfidenceLevelModified, CompositionDefined
accept_links = SUBJECT=*

[federation.peer.tekton]
domain = tekton.example
token = t0ken
"""


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "boss.ini"
    path.write_text(INI, encoding="utf-8")
    return path


def test_the_section_and_its_peers(ini: Path) -> None:
    config = Config.load(ini, environ={})
    settings = load_federation(config, environ={})
    assert settings.site_name(config) == "odl"
    assert [p.name for p in settings.peer_settings] == ["opnfv", "tekton"]
    opnfv = settings.peer("opnfv")
    assert opnfv is not None and opnfv.site_domain == "opnfv"
    assert opnfv.publish.as_dict() == {
        "type": ["ArtifactCreated"],
        "data": {"identity": "~^pkg:generic/odl", "name": "netvirt"},
        "links": {},
    }
    assert opnfv.accept.links == {"SUBJECT": "*"}
    tekton = settings.peer("tekton")
    assert tekton is not None and tekton.site_domain == "tekton.example" and not tekton.url
    assert settings.queue_name(opnfv) == "boss.federation.out.opnfv"
    env = load_federation(config, environ={"BOSS_FEDERATION_SITE": "odl-prod"})
    assert env.site_name(config) == "odl-prod"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[federation]\npeers = ghost\n", "no [federation.peer.ghost] section"),
        ("[federation]\npeers = p\n[federation.peer.p]\nurl = http://x/\n", "must authenticate"),
        ("[federation]\npeers = p\n[federation.peer.p]\ntoken = t\ncolour = red\n", "colour"),
        ("[federation]\npeers = p\n[federation.peer.p]\ntoken = t\nmode = smoke\n", "mode"),
        (
            "[federation]\npeers = p\n[federation.peer.p]\ntoken = t\naccept_data = nokey\n",
            "not key=value",
        ),
    ],
)
def test_bad_peers_are_named(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "bad.ini"
    path.write_text("[boss]\n" + extra, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_federation(Config.load(path, environ={}), environ={})


class _Graph:
    def __init__(self, known: dict[str, dict[str, Any]] | None = None) -> None:
        self.known = known or {}

    def get_many(self, ids: list[str]) -> list[dict[str, Any] | None]:
        return [self.known.get(i) for i in ids]


class _Bus:
    def __init__(self) -> None:
        self.published: list[tuple[bytes, str]] = []

    def publish_raw(self, body: bytes, key: str) -> None:
        self.published.append((body, key))

    def close(self) -> None:
        pass


@pytest.fixture
def inbound(ini: Path) -> tuple[Inbound, list[tuple[str, str]], _Bus]:
    config = Config.load(ini, environ={})
    settings = load_federation(config, environ={})
    bus = _Bus()
    ib = Inbound(config, settings, graph=_Graph(), bus=bus)
    letters: list[tuple[str, str]] = []
    ib.deadletter = lambda body, reason: letters.append((str(body), reason))  # type: ignore[assignment,method-assign]
    return ib, letters, bus


def _sender_of(peer_site: str, ini: Path, **peer: str) -> Sender:
    """A sender as the peer's site would have it, its peer being odl."""
    config = Config.load(ini, environ={}).replace(eiffel_domain=peer_site)
    p = PeerSettings.from_mapping({"url": "http://odl/", **peer}).replace(name="odl")
    return Sender(config, FederationSettings().replace(site=peer_site, peer_settings=(p,)), p)


def test_binary_mode_and_the_accept_filter(inbound, ini) -> None:
    ib, letters, bus = inbound
    sender = _sender_of("opnfv", ini, secret="s3cret", mode="binary")
    comp = eiffel.composition_defined("opnfv-7", [], source={"name": "opnfv"})
    clm = eiffel.confidence_level_modified(
        "community-b-tested", "SUCCESS", [comp["meta"]["id"]], source={"name": "opnfv"}
    )
    no_subject_link = eiffel.confidence_level_modified(
        "x", "SUCCESS", [comp["meta"]["id"]], source={"name": "opnfv"}
    )
    no_subject_link["links"] = [{"type": "CAUSE", "target": comp["meta"]["id"]}]
    # the sender stamps its site on events without a domain, and selects its own only
    other = eiffel.artifact_created("pkg:generic/a@1", source={"name": "a", "domainId": "odl"})
    chosen = sender.select([json.dumps([comp, other]), json.dumps(clm)])
    assert [e["meta"]["source"]["domainId"] for e in chosen] == ["opnfv", "opnfv"]
    requests = sender.requests(chosen)
    assert (
        len(requests) == 2 and requests[0][1]["ce-type"] == "eiffel.EiffelCompositionDefinedEvent"
    )
    # a filter is one conjunction: accept_links = SUBJECT=* refuses the
    # composition (it has no SUBJECT link) and takes the level
    answers = [ib.handle(Headers(headers), body) for body, headers in requests]
    assert [status for status, _ in answers] == [200, 200]
    assert answers[0][1]["accepted"] == [] and letters[-1][1].startswith("federation-accept:")
    assert answers[1][1]["accepted"] == [clm["meta"]["id"]]
    assert [key for _, key in bus.published] == ["eiffel._.batch._.opnfv"]
    # a level without a subject link is refused
    [(body, headers)] = sender.requests(sender.select([json.dumps(no_subject_link)]))
    _status, answer = ib.handle(Headers(headers), body)
    assert answer["accepted"] == [] and letters[-1][1].startswith("federation-accept:")


def test_a_token_peer_may_post_cdevents_and_they_take_its_domain(inbound) -> None:
    ib, letters, bus = inbound
    art = eiffel.artifact_created("pkg:generic/tekton-built@1.0")
    cd = cdevents.to_cdevent(art)
    body = json.dumps([cloudevents.wrap_cdevent(cd)]).encode()
    headers = Headers({"X-Boss-Site": "tekton", "Authorization": "Bearer t0ken"})
    status, answer = ib.handle(headers, body)
    assert status == 200 and len(answer["accepted"]) == 1, answer
    stored = json.loads(bus.published[-1][0])
    assert stored[0]["meta"]["source"]["domainId"] == "tekton.example"
    status, _ = ib.handle(Headers({"X-Boss-Site": "tekton", "Authorization": "Bearer no"}), body)
    assert status == 401 and letters[-1][1].startswith("federation-auth:")
    # a CDEvents producer still cannot claim another domain through customData.eiffel
    forged = eiffel.artifact_created("pkg:generic/f@1", source={"name": "x", "domainId": "odl"})
    body = json.dumps([forged]).encode()
    status, answer = ib.handle(
        Headers({"X-Boss-Site": "tekton", "Authorization": "Bearer t0ken"}), body
    )
    assert answer["accepted"] == [] and letters[-1][1].startswith("federation-domain:")


CDEVENT_EXAMPLES = sorted((CONFORMANCE / "cdevents-0.5.1" / "conformance").glob("artifact_*.json"))


@pytest.mark.skipif(
    not CDEVENT_EXAMPLES, reason=f"no CDEvents conformance examples at {CONFORMANCE}"
)
@pytest.mark.parametrize("path", CDEVENT_EXAMPLES, ids=lambda p: p.stem)
def test_the_cdevents_conformance_artifacts_posted_as_a_producer_would(inbound, path) -> None:
    """The CDEvents project's own examples (read in place), each posted in
    CloudEvents binary mode (``ce-*`` headers, the CDEvent as the body) as
    a Tekton or Jenkins plugin posts them: accepted, stored as an Eiffel
    event of the producer's domain, never of the domain it might claim."""
    ib, letters, bus = inbound
    event = json.loads(path.read_text(encoding="utf-8"))
    ctx = event["context"]
    headers = Headers(
        {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": ctx["id"],
            "ce-source": ctx["source"],
            "ce-type": ctx["type"],
            "ce-time": ctx["timestamp"],
            "X-Boss-Site": "tekton",
            "Authorization": "Bearer t0ken",
        }
    )
    status, answer = ib.handle(headers, json.dumps(event).encode())
    assert status == 200, answer
    if path.stem not in ("artifact_packaged", "artifact_published"):
        # deleted, downloaded, signed: no Eiffel counterpart; refused with
        # the reason and set aside, not dropped
        assert answer["accepted"] == [] and "no Eiffel counterpart" in str(answer["rejected"])
        assert letters and "no Eiffel counterpart" in letters[-1][1]
        assert ctx["id"] in letters[-1][0]
        return
    assert len(answer["accepted"]) == 1 and not letters, (answer, letters)
    stored = json.loads(bus.published[-1][0])
    [converted] = stored if isinstance(stored, list) else [stored]
    assert converted["meta"]["source"]["domainId"] == "tekton.example"
    assert converted["meta"]["type"] in (
        "EiffelArtifactCreatedEvent",
        "EiffelArtifactPublishedEvent",
    )
