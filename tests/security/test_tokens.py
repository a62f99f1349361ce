"""Per-dispatch tokens (``engine.tokens``, docs/security.md): the engine
applies a participant's reply only when it carries the token the engine
gave that step's workitem. A reply with a wrong, missing or borrowed token
is dead-lettered with the reason and changes no run.

Most tests drive ``EngineService`` with a recording publisher that stamps
workitems exactly as ``engine.broker.Publisher.dispatch`` does; the last
ones run a real engine worker and a real participant process (tests/e2e's
``System``) with tokens on, on both brokers."""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import tokens, wire
from engine.broker import Publisher, list_deadletters, participant_queue
from engine.config import Config, ConfigError
from engine.core import effects as fx
from engine.core import messages, states
from engine.service import EngineService, Incoming
from engine.store import RedisStore
from tests.conftest import delete_keys
from tests.e2e.conftest import System
from tests.waiting import wait_for

KEY = "k" * 32
TWO = "name: two\nsteps:\n  - alpha\n  - beta\n"
BOTH = "name: both\nsteps:\n  - concurrence:\n      - alpha\n      - beta\n"


class Recorder:
    """What the service would have published; workitems stamped as
    ``Publisher.dispatch`` stamps them."""

    def __init__(self, config: Config) -> None:
        self.tokens = tokens.Tokens.from_config(config)
        self.dispatched: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.letters: list[dict[str, Any]] = []

    def dispatch(self, effect: fx.Dispatch) -> None:
        self.dispatched.append(self.tokens.stamp(effect.workitem, effect.participant))

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        pass

    def send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)

    def deadletter(self, record: dict[str, Any]) -> None:
        self.letters.append(record)

    def of(self, participant: str) -> dict[str, Any]:
        return next(w for w in reversed(self.dispatched) if w["participant_name"] == participant)


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> Iterator[RedisStore]:
    s = RedisStore(redis_url, prefix=key_prefix)
    yield s
    delete_keys(s.client, key_prefix)
    s.close()


def make(store: RedisStore, **settings: Any) -> tuple[EngineService, Recorder]:
    config = Config.load(
        None, environ={"HOME": "/nonexistent"}, heartbeat=0.5, events=False, **settings
    )
    rec = Recorder(config)
    service = EngineService(config, store, rec, engine_id="w1.c0")
    store.engine_heartbeat("w1", 30, {})
    service.engine.register("alpha", "q.alpha")
    service.engine.register("beta", "q.beta")
    return service, rec


@pytest.fixture
def on(store: RedisStore) -> tuple[EngineService, Recorder]:
    return make(store, dispatch_key=KEY)


def version(store: RedisStore, wfid: str) -> int:
    loaded = store.load_run(wfid)
    assert loaded is not None
    return loaded[1]


def waiting(service: EngineService, wfid: str) -> list[str]:
    return sorted(p.participant or "" for p in service.engine.run(wfid).positions)


def launch(service: EngineService, definition: str = TWO) -> str:
    wfid = f"w-{uuid.uuid4().hex[:8]}"
    assert service.handle(wire.dumps({"definition": definition, "wfid": wfid})).startswith(
        "launched"
    )
    return wfid


def refused(service: EngineService, rec: Recorder, store: RedisStore, wfid: str, body: Any) -> str:
    """Hand ``body`` to the service; assert it was dead-lettered and the run
    is exactly as it was; the dead letter's reason."""
    before = version(store, wfid)
    positions = waiting(service, wfid)
    letters = len(rec.letters)
    outcome = service.handle(body if isinstance(body, bytes) else wire.dumps(body))
    assert outcome.startswith("dead-lettered"), outcome
    assert len(rec.letters) == letters + 1
    assert version(store, wfid) == before, "a refused reply changed the run"
    assert waiting(service, wfid) == positions
    letter = rec.letters[-1]
    assert wire.deadletter_body(letter) == (
        body if isinstance(body, bytes) else wire.dumps(body)
    ), "the dead letter keeps the body as it came"
    return str(letter["reason"])


# -- the token itself ----------------------------------------------------------------------


def test_a_token_is_bound_to_the_key_the_step_and_the_participant() -> None:
    fei = {"wfid": "w1", "expid": "0_0", "subid": "0_0!a"}
    token = tokens.mint(KEY.encode(), fei, "alpha")
    assert token.startswith("v1.")
    assert tokens.verify(KEY.encode(), fei, "alpha", token)
    assert tokens.verify(KEY.encode(), {**fei, "engine_id": "x"}, "alpha", token)
    for other in (
        {**fei, "wfid": "w2"},
        {**fei, "expid": "0_1"},
        {**fei, "subid": "0_0!b"},
    ):
        assert not tokens.verify(KEY.encode(), other, "alpha", token)
    assert not tokens.verify(KEY.encode(), fei, "beta", token)
    assert not tokens.verify(("x" * 32).encode(), fei, "alpha", token)
    assert not tokens.verify(KEY.encode(), fei, "alpha", None)
    assert not tokens.verify(KEY.encode(), fei, "alpha", token[:-1])


def test_the_key_comes_from_a_file_or_the_setting_and_must_be_long_enough(tmp_path: Path) -> None:
    assert tokens.read_key() is None
    path = tmp_path / "dispatch.key"
    path.write_text("  " + "s" * 40 + "\n")
    assert tokens.read_key(key_file=str(path), key=KEY) == b"s" * 40
    assert tokens.read_key(key=KEY) == KEY.encode()
    with pytest.raises(ConfigError, match=r"dispatch_key_file = .*missing"):
        tokens.read_key(key_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="at least 16"):
        tokens.read_key(key="short")


def test_a_worker_with_an_unreadable_key_file_does_not_start(
    store: RedisStore, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="dispatch_key_file"):
        make(store, dispatch_key_file=str(tmp_path / "nope.key"))


def test_without_a_key_nothing_changes(store: RedisStore) -> None:
    service, rec = make(store)
    assert not service.tokens.enabled
    wfid = launch(service)
    alpha = rec.of("alpha")
    assert tokens.TOKEN_KEY not in alpha
    assert service.handle(wire.dumps(alpha)) == "reply applied"
    assert waiting(service, wfid) == ["beta"]


# -- replies through EngineService -----------------------------------------------------------


def test_the_reply_with_its_token_is_applied(on: tuple[EngineService, Recorder]) -> None:
    service, rec = on
    wfid = launch(service)
    alpha = rec.of("alpha")
    assert tokens.verify(KEY.encode(), alpha["fei"], "alpha", alpha[tokens.TOKEN_KEY])
    alpha["fields"]["done"] = True
    assert service.handle(wire.dumps(alpha)) == "reply applied"
    assert waiting(service, wfid) == ["beta"]
    beta = rec.of("beta")
    assert beta["fields"]["done"] is True
    assert beta[tokens.TOKEN_KEY] != alpha[tokens.TOKEN_KEY]
    # the engine's own form of a reply ({"type": "reply", "workitem": ...}) too
    assert service.handle(wire.dumps(messages.reply(beta))) == "reply applied"
    assert service.engine.run(wfid).status == states.FINISHED
    assert not rec.letters


def test_a_reply_without_a_token_is_dead_lettered_and_changes_no_run(
    on: tuple[EngineService, Recorder], store: RedisStore
) -> None:
    service, rec = on
    wfid = launch(service)
    forged = copy.deepcopy(rec.of("alpha"))
    del forged[tokens.TOKEN_KEY]
    reason = refused(service, rec, store, wfid, forged)
    assert "reply without a dispatch token" in reason
    assert f"participant alpha, step {wfid}/" in reason
    # nor in the engine's own form
    reason = refused(service, rec, store, wfid, messages.reply(forged))
    assert "without a dispatch token" in reason
    assert waiting(service, wfid) == ["alpha"]


def test_a_reply_with_a_wrong_token_is_dead_lettered(
    on: tuple[EngineService, Recorder], store: RedisStore
) -> None:
    service, rec = on
    wfid = launch(service)
    forged = copy.deepcopy(rec.of("alpha"))
    forged[tokens.TOKEN_KEY] = tokens.mint(
        b"a key that is not the engine's", forged["fei"], "alpha"
    )
    assert "reply with a wrong dispatch token" in refused(service, rec, store, wfid, forged)
    forged[tokens.TOKEN_KEY] = 42
    assert "wrong dispatch token" in refused(service, rec, store, wfid, forged)


def test_a_token_of_another_step_or_participant_is_refused(
    on: tuple[EngineService, Recorder], store: RedisStore
) -> None:
    """beta holds a good token, for its own step: it cannot reply for
    alpha's step with it, nor claim to be alpha."""
    service, rec = on
    wfid = launch(service, BOTH)
    assert waiting(service, wfid) == ["alpha", "beta"]
    alpha, beta = rec.of("alpha"), rec.of("beta")
    # alpha's step, beta's token
    forged = {**copy.deepcopy(alpha), tokens.TOKEN_KEY: beta[tokens.TOKEN_KEY]}
    assert "wrong dispatch token" in refused(service, rec, store, wfid, forged)
    # alpha's step, claiming to be beta, with beta's token
    forged["participant_name"] = "beta"
    assert "wrong dispatch token" in refused(service, rec, store, wfid, forged)
    # beta's own step, naming alpha as the participant
    forged = {**copy.deepcopy(beta), "participant_name": "alpha"}
    assert "wrong dispatch token" in refused(service, rec, store, wfid, forged)
    # and a token of the same step in another run
    other = launch(service, BOTH)
    theirs = {**copy.deepcopy(rec.of("alpha")), tokens.TOKEN_KEY: alpha[tokens.TOKEN_KEY]}
    assert theirs["fei"]["subid"] == alpha["fei"]["subid"]
    assert "wrong dispatch token" in refused(service, rec, store, other, theirs)
    # the genuine replies still work
    assert service.handle(wire.dumps(alpha)) == "reply applied"
    assert service.handle(wire.dumps(beta)) == "reply applied"
    assert service.engine.run(wfid).status == states.FINISHED


def test_a_started_notice_must_carry_its_own_steps_workitem_and_token(
    on: tuple[EngineService, Recorder], store: RedisStore
) -> None:
    """The workitem of a ``started`` notice is dispatched again when the
    lease runs out: beta may not slip in alpha's workitem, nor one without
    its token (changed params for another step, say)."""
    service, rec = on
    wfid = launch(service, BOTH)
    alpha, beta = rec.of("alpha"), rec.of("beta")
    smuggled = {**copy.deepcopy(alpha), "participant_name": "beta"}
    started = messages.started(wfid, beta["fei"]["subid"], lease=5, instance="x", workitem=smuggled)
    assert "carrying the workitem of" in refused(service, rec, store, wfid, started)
    bare = {k: v for k, v in copy.deepcopy(alpha).items() if k != tokens.TOKEN_KEY}
    bare["fields"]["params"] = {"target": "somewhere else"}
    started = messages.started(wfid, alpha["fei"]["subid"], lease=5, instance="x", workitem=bare)
    assert "started notice without a dispatch token" in refused(service, rec, store, wfid, started)
    genuine = messages.started(wfid, beta["fei"]["subid"], lease=5, instance="b", workitem=beta)
    assert service.handle(wire.dumps(genuine)) == "started applied"


def test_a_workitem_smuggled_in_again_gets_no_usable_token(store: RedisStore) -> None:
    """With the dispatch lease on (``dispatch_lease``: off by default, set for
    a Redis without ``BLMOVE``), a lease timer message (the engine's own,
    unsigned: anyone on the engine's queue can send one) for beta's step
    carrying alpha's workitem makes the engine dispatch it again to beta's
    queue, stamped for beta. beta's reply for alpha's step with that token
    names beta, and alpha's step waits on alpha: refused."""
    service, rec = make(store, dispatch_key=KEY, broker_url="redis://h/0", dispatch_lease=62)
    wfid = launch(service, BOTH)
    alpha, beta = rec.of("alpha"), rec.of("beta")
    smuggled = {k: v for k, v in alpha.items() if k != tokens.TOKEN_KEY}
    smuggled["participant_name"] = "beta"
    timer = messages.lease_timer(
        wfid, beta["fei"]["subid"], lease=1.0, instance="evil", workitem=smuggled
    )
    service.handle(wire.dumps(timer))
    again = rec.dispatched[-1]
    assert again["fei"] == alpha["fei"] and again["participant_name"] == "beta"
    assert tokens.verify(KEY.encode(), again["fei"], "beta", again[tokens.TOKEN_KEY])
    reason = refused(service, rec, store, wfid, again)
    assert f"reply names participant 'beta' but step {wfid}/" in reason
    assert "was dispatched to 'alpha'" in reason
    assert service.handle(wire.dumps(alpha)) == "reply applied"


def test_without_a_dispatch_lease_a_smuggled_lease_timer_dispatches_nothing(
    on: tuple[EngineService, Recorder], store: RedisStore
) -> None:
    """By default no step has a lease timer until its participant takes a
    lease: a lease timer message for it is ignored, and nothing goes out."""
    service, rec = on
    wfid = launch(service, BOTH)
    alpha, beta = rec.of("alpha"), rec.of("beta")
    smuggled = {k: v for k, v in alpha.items() if k != tokens.TOKEN_KEY}
    timer = messages.lease_timer(
        wfid, beta["fei"]["subid"], lease=1.0, instance="evil", workitem=smuggled
    )
    sent = len(rec.dispatched)
    before = version(store, wfid)
    outcome = service.handle(wire.dumps(timer))
    assert "ignored" in str(outcome), outcome
    assert len(rec.dispatched) == sent and version(store, wfid) == before


def test_in_a_batch_a_refused_reply_is_dead_lettered_alone(
    on: tuple[EngineService, Recorder], store: RedisStore
) -> None:
    service, rec = on
    one, two = launch(service), launch(service)
    good = rec.of("alpha")
    bad = {**copy.deepcopy(good), tokens.TOKEN_KEY: "v1.nope"}
    bad["fei"] = dict(bad["fei"], wfid=one)
    first = next(w for w in rec.dispatched if w["fei"]["wfid"] == one)
    assert first["participant_name"] == "alpha"
    before = version(store, one)
    outcomes = service.handle_batch(
        [Incoming(wire.dumps(good)), Incoming(wire.dumps(bad)), Incoming(wire.dumps(first))]
    )
    assert outcomes[0] == "reply applied" and outcomes[2] == "reply applied", outcomes
    assert isinstance(outcomes[1], str) and outcomes[1].startswith("dead-lettered"), outcomes
    assert "wrong dispatch token" in outcomes[1]
    assert [x["reason"] for x in rec.letters] == [outcomes[1].split(": ", 1)[1]]
    assert version(store, one) == before + 1  # the good reply only
    assert waiting(service, one) == ["beta"] and waiting(service, two) == ["beta"]


def test_a_malformed_reply_without_its_token_fails_no_step(
    on: tuple[EngineService, Recorder], store: RedisStore
) -> None:
    """A malformed reply that names a step fails that step (so the run shows
    it), but only with the step's token: else anyone could fail any step."""
    service, rec = on
    wfid = launch(service)
    alpha = rec.of("alpha")
    broken = {**copy.deepcopy(alpha), "fields": "not an object"}
    del broken[tokens.TOKEN_KEY]
    reason = refused(service, rec, store, wfid, broken)
    assert "without a dispatch token" in reason and "left alone" in reason
    # with its token, the step fails as before
    broken[tokens.TOKEN_KEY] = alpha[tokens.TOKEN_KEY]
    assert service.handle(wire.dumps(broken)).startswith("dead-lettered")
    assert service.engine.run(wfid).status == states.ERROR


def test_participants_allowed_by_name_reply_without_a_token(store: RedisStore) -> None:
    service, rec = make(store, dispatch_key=KEY, untokened_participants=("al*",))
    wfid = launch(service)
    plain = {k: v for k, v in rec.of("alpha").items() if k != tokens.TOKEN_KEY}
    assert service.handle(wire.dumps(plain)) == "reply applied"
    plain = {k: v for k, v in rec.of("beta").items() if k != tokens.TOKEN_KEY}
    assert "without a dispatch token" in refused(service, rec, store, wfid, plain)


def test_registrations_from_the_queue_are_refused_while_tokens_are_on(store: RedisStore) -> None:
    service, _ = make(store, dispatch_key=KEY)
    outcome = service.handle(wire.dumps(messages.register("alpha", "q.evil")))
    assert outcome.startswith("dead-lettered") and "queue_registrations" in outcome
    reg = service.engine.registrations().match("alpha")
    assert reg is not None and reg.queue == "q.alpha"
    service, _ = make(store, dispatch_key=KEY, queue_registrations="true")
    assert service.handle(wire.dumps(messages.register("gamma", "q.gamma"))).startswith(
        "registered"
    )
    service, _ = make(store)  # tokens off, auto: applied as before
    assert service.handle(wire.dumps(messages.register("delta", "q.delta"))).startswith(
        "registered"
    )


# -- the real publisher, a real worker and a real participant ------------------------------


def test_the_publisher_stamps_what_it_dispatches(broker_url: str) -> None:
    queue = f"tok-{uuid.uuid4().hex[:8]}"
    config = Config.load(None, environ={}, broker_url=broker_url, dispatch_key=KEY)
    publisher = Publisher(config)
    fei = {"wfid": "w1", "expid": "0_0", "subid": "0_0!1"}
    workitem = {"fei": fei, "fields": {}, "participant_name": "alpha"}
    try:
        publisher.dispatch(fx.Dispatch("alpha", queue, workitem))
        assert tokens.TOKEN_KEY not in workitem, "the effect's workitem is left as it was"
        with publisher.connection.clone() as conn:
            q = participant_queue(queue)(conn.channel())
            message = wait_for(lambda: q.get(no_ack=True), 10, "the workitem")
            got = json.loads(message.body)
            q.delete()
    finally:
        publisher.close()
    assert tokens.verify(KEY.encode(), fei, "alpha", got[tokens.TOKEN_KEY])


class TokenSystem(System):
    """tests/e2e's ``System`` whose engine workers hold the dispatch key
    (in their own ``boss.ini``; the participants' INI files do not have it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        key = self.tmp / "dispatch.key"
        key.write_text(secrets.token_hex(32))
        key.chmod(0o600)
        self.key = key.read_bytes()
        self.ini = self.tmp / "worker.ini"
        self.ini.write_text(self._boss_section() + f"dispatch_key_file = {key}\n")


def test_a_run_with_tokens_through_a_worker_and_a_participant(
    broker_url: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A real worker with the key; ``bump`` is a real participant process;
    ``hand`` is this test acting as a participant (its queue has no
    consumer). Forged replies for hand's step are dead-lettered and the run
    does not move; hand's genuine reply (the workitem as it came, token
    and all) moves it on, and bump's (sent by the participant runtime) ends it."""
    (tmp_path / "processes").mkdir()
    prefix = f"tok{uuid.uuid4().hex[:8]}"
    system = TokenSystem(tmp_path, broker_url, redis_url, prefix)
    try:
        hand = f"{prefix}.hand"
        system.engine.register("hand", hand, regex=False)
        system.worker()
        system.participant("bump", "Bump")
        # bump's step outlasts lease_after: its runtime sends a ``started``
        # notice with the workitem (and token) it got, which must pass too
        wfid = system.launch("name: t\nsteps:\n  - hand\n  - bump: {sleep: 1.6}\n", {"n": 0})
        with system.publisher.connection.clone() as conn:
            q = participant_queue(hand)(conn.channel())
            q.declare()
            message = wait_for(lambda: q.get(no_ack=True), 30, "hand's workitem")
            workitem = json.loads(message.body)
            assert tokens.verify(system.key, workitem["fei"], "hand", workitem["dispatch_token"])
            before = system.store.load_run(wfid)
            assert before is not None
            forged_none = {k: v for k, v in workitem.items() if k != "dispatch_token"}
            forged_wrong = {**workitem, "dispatch_token": "v1.AAAA"}
            for forged in (forged_none, forged_wrong):
                system.publisher.send(forged)

            def letters() -> list[str]:
                return [
                    x["reason"]
                    for x in list_deadletters(system.config, conn)
                    if wfid in x["reason"]
                ]

            reasons = wait_for(lambda: len(letters()) == 2 and letters(), 30, "two dead letters")
            assert any("without a dispatch token" in r for r in reasons), reasons
            assert any("wrong dispatch token" in r for r in reasons), reasons
            after = system.store.load_run(wfid)
            assert after is not None and after[1] == before[1], "a forged reply moved the run"
            assert system.status(wfid) == states.RUNNING
            workitem["fields"]["n"] = 10
            system.publisher.send(workitem)
            system.wait_status(wfid, timeout=30)
            assert system.engine.run(wfid).fields["n"] == 11
            assert len(list_deadletters(system.config, conn)) == 2, "only the forged ones"
        assert "took a lease on" in system.logs(), "bump sent a started notice"
    except BaseException:
        print(system.logs())
        raise
    finally:
        system.cleanup()
        with contextlib.suppress(Exception), system.publisher.connection.clone() as conn:
            participant_queue(f"{prefix}.hand")(conn.channel()).delete()


def test_a_real_boss_participant_sends_the_token_back(
    compat_dir: Path, embedded_broker_url: str, redis_url: str, tmp_path: Path
) -> None:
    """check_multiple_destinations.py of the BOSS standard workflow,
    unchanged, under ``boss-participant`` (SkyNET's Exo contract): the
    workitem it replies with still carries its token, so a run with tokens
    on goes through with no dead letter."""
    code = compat_dir / "boss-standard-workflow" / "participants" / "check_multiple_destinations.py"
    (tmp_path / "processes").mkdir()
    prefix = f"tokc{uuid.uuid4().hex[:8]}"
    system = TokenSystem(tmp_path, embedded_broker_url, redis_url, prefix)
    try:
        system.worker()
        queue = f"{prefix}.check"
        ini = tmp_path / "check.ini"
        ini.write_text(
            f"[participant]\nname = check_multiple_destinations\nqueue = {queue}\n"
            f"code = {code}\n\n" + system._boss_section()
        )
        system.engine.register("check_multiple_destinations", queue, regex=False)
        proc = system._spawn("check-0", [sys.executable, "-m", "participants.runtime", str(ini)])
        wait_for(
            lambda: "consuming" in proc.log.read_text(errors="replace") or not proc.alive(),
            30,
            "the participant to consume",
        )
        actions = [
            {"type": "submit", "targetproject": "Project:A", "deleteproject": None},
            {"type": "submit", "targetproject": "Project:B", "deleteproject": None},
        ]
        wfid = system.launch(
            "name: c\nsteps:\n  - check_multiple_destinations\n", {"ev": {"actions": actions}}
        )
        system.wait_status(wfid, timeout=30)
        fields = system.engine.run(wfid).fields
        assert fields["__result__"] is False  # ``wi.result``, as ruote keeps it
        assert fields["msg"] == ["Multiple destination projects in request"]
        with system.publisher.connection.clone() as conn:
            assert list_deadletters(system.config, conn) == []
    except BaseException:
        print(system.logs())
        raise
    finally:
        system.cleanup()
        with contextlib.suppress(Exception), system.publisher.connection.clone() as conn:
            participant_queue(f"{prefix}.check")(conn.channel()).delete()


def test_boss_doctor_says_whether_tokens_are_on_and_fails_on_an_unreadable_key(
    tmp_path: Path,
) -> None:
    from engine.config import Config
    from engine.doctor import FAIL, OK, Report, _check_tokens

    def finding(**keys: object) -> object:
        report = Report()
        _check_tokens(Config.load(None, environ={"HOME": "/nonexistent"}, **keys), report)
        return report.get("config.tokens")

    off = finding()
    assert off.status == OK and off.data["enabled"] is False and "tokens off" in off.found
    key = tmp_path / "dispatch.key"
    key.write_text("0123456789abcdef" * 4)
    on = finding(dispatch_key_file=str(key), untokened_participants="legacy_*")
    assert on.status == OK and on.data["enabled"] is True and "legacy_*" in on.found
    missing = finding(dispatch_key_file=str(tmp_path / "nope.key"))
    assert missing.status == FAIL and "cannot be read" in missing.found
