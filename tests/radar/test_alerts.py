"""Radar alerts (issue 17): ``boss ci watch`` launches ``[radar]
alert_process`` when a CI system's health changes, once per change, with the
reasons in the run's fields; the process tells people with the notify
participants BOSS has. Deliveries are the recorded Gerrit ones varied (as
in test_radar.py); the launch reaches a real engine queue on the embedded
broker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis
from click.testing import CliRunner

from engine import wire
from engine.broker import participant_queue, redis_transport
from engine.radar import RadarFeed, RadarSettings, RadarStore, launch_item, watch
from tests.radar import test_radar
from tests.radar.test_radar import FOREVER, T0, Gen, H, lines, month

pytestmark = pytest.mark.redis

#: the recorded deliveries, varied (test_radar.py's fixture)
gen = test_radar.gen

SETTINGS = RadarSettings(gate="Zuul", alert_process="radar-alert", alert_window=30 * H)


@pytest.fixture
def feed(redis_client: redis.Redis, key_prefix: str, gen: Gen) -> RadarFeed:
    feed = RadarFeed(RadarStore(redis_client, key_prefix, FOREVER), SETTINGS)
    feed.import_gerrit(lines(month(gen)))  # Vendor X CI falls silent halfway
    return feed


def test_a_system_that_turns_unhealthy_launches_the_alert_once_and_again_on_recovery(
    feed: RadarFeed, gen: Gen
) -> None:
    launched: list[dict[str, Any]] = []
    # every system healthy at the first look: nothing to tell
    assert watch(feed.store, SETTINGS, now=T0 + 10 * H, launch=launched.append) == []
    # Vendor X CI has been silent for hours while patch sets arrived
    (alert,) = watch(feed.store, SETTINGS, now=T0 + 30 * H, launch=launched.append)
    assert (alert.system, alert.healthy, alert.was) == ("Vendor X CI", False, True)
    assert any(r.startswith("no report for") for r in alert.reasons), alert.reasons
    (item,) = launched
    assert item["process"] == "radar-alert"
    radar = item["fields"]["radar"]
    assert radar["system"] == "Vendor X CI" and radar["healthy"] is False
    assert radar["reasons"] == list(alert.reasons)
    assert item["fields"]["msg"].startswith("CI system Vendor X CI is unhealthy: no report for")
    # still unhealthy a minute later: told once, not again
    assert watch(feed.store, SETTINGS, now=T0 + 30 * H + 60, launch=launched.append) == []
    assert len(launched) == 1
    # it reports again on every new patch set: healthy again, told once
    events = []
    for i in range(60, 80):
        at = T0 + 30 * H + i * 60
        events += [gen.patchset(500 + i, at), gen.vote("Vendor X CI", 500 + i, at + 30, 1)]
        events.append(gen.vote("Zuul", 500 + i, at + 40, 1))
    feed.import_gerrit(lines(events))
    (back,) = watch(feed.store, SETTINGS, now=T0 + 32 * H, launch=launched.append)
    assert (back.system, back.healthy, back.was, back.reasons) == ("Vendor X CI", True, False, ())
    assert launched[-1]["fields"]["msg"] == "CI system Vendor X CI is healthy again"
    assert launched[-1]["wfid"] != launched[0]["wfid"]


def test_the_same_look_again_launches_under_the_same_wfid(feed: RadarFeed) -> None:
    """A look repeated after a crash (before its verdict was remembered)
    sends the same launch item: the engine takes a wfid once."""
    (alert,) = watch(feed.store, SETTINGS, now=T0 + 30 * H)
    assert launch_item(alert, "p")["wfid"] == launch_item(alert, "p")["wfid"]
    assert launch_item(alert, "p")["wfid"].startswith("radar-")


def test_boss_ci_watch_once_puts_the_launch_on_the_engine_queue(
    feed: RadarFeed, redis_url: str, key_prefix: str, embedded_broker_url: str, tmp_path: Path
) -> None:
    from bossapp.cli import main

    queue = f"boss.engine.{uuid.uuid4().hex[:8]}"
    env = {
        "BOSS_REDIS_URL": redis_url,
        "BOSS_KEY_PREFIX": key_prefix,
        "BOSS_BROKER_URL": embedded_broker_url,
        "BOSS_ENGINE_QUEUE": queue,
        "BOSS_RADAR_RETENTION": "36500d",
        "BOSS_RADAR_GATE": "Zuul",
        "BOSS_RADAR_ALERT_PROCESS": "radar-alert",
        "BOSS_RADAR_ALERT_WINDOW": "30h",
        "BOSS_CONFIG": "/dev/null",
    }
    args = ["ci", "watch", "--once", "--until", str(T0 + 30 * H), "--json"]
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 0, out.output
    (told,) = json.loads(out.output)
    assert told["system"] == "Vendor X CI" and told["healthy"] is False
    with (
        kombu.Connection(embedded_broker_url, transport=redis_transport()) as conn,
        conn.channel() as channel,
    ):
        message = participant_queue(queue)(channel).get(no_ack=True)
        assert message is not None
        item = wire.decode(message.body)
        participant_queue(queue)(channel).delete()
    assert item["process"] == "radar-alert"
    assert item["fields"]["radar"]["system"] == "Vendor X CI"
    # the next look has nothing new to tell
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 0 and json.loads(out.output) == [], out.output


def test_the_shipped_alert_process_loads() -> None:
    """``processes/radar/ci_alert.yaml``, the process the docs name, is a
    valid definition that posts ``fields.msg``."""
    from engine.core.loader import load_definition

    path = Path(__file__).resolve().parents[2] / "processes" / "radar" / "ci_alert.yaml"
    d = load_definition(path.read_text(), str(path))
    assert d.name == "ci_alert" and "notify_irc" in d.source and "${msg}" in d.source


def test_the_ci_alert_mail_template_names_the_reasons(feed: RadarFeed) -> None:
    from participants.standard.notify import BUILTIN_TEMPLATES, render

    (alert,) = watch(feed.store, SETTINGS, now=T0 + 30 * H)
    fields = launch_item(alert, "radar/ci_alert")["fields"]
    headers, body = render(BUILTIN_TEMPLATES["CI_ALERT"], fields)
    assert headers["Subject"] == f"[BOSS] {fields['msg']}"
    assert alert.reasons[0] in body
