"""An invalid registration pattern (a regular expression that does not
compile, and so would match nothing) is refused with ``re.error``'s reason
and position, never stored: by ``Engine.register`` (the API), by ``boss
register`` (a usage error), and, arriving as a ``register`` message on the
engine's queue, by the engine service, which dead-letters it with the
reason."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bossapp.cli import main
from engine import wire
from engine.config import Config
from engine.core import messages
from engine.core.registrations import InvalidPattern, check_pattern
from engine.engine import Engine
from engine.service import EngineService
from engine.store.memory import MemoryStore
from engine.testing import ProcessHarness
from tests.integration.test_engine_service import Recorder

BAD = "build_(x"


def test_check_pattern_names_the_reason_and_the_position() -> None:
    with pytest.raises(InvalidPattern) as exc:
        check_pattern(BAD, regex=True)
    assert str(exc.value) == (
        f"{BAD!r} is not a valid regular expression: missing ), unterminated subpattern "
        "at position 6"
    )
    check_pattern("build_.*", regex=True)
    check_pattern(BAD, regex=False)  # a plain name: any text


def test_engine_register_refuses_an_invalid_regex_and_stores_nothing() -> None:
    engine = Engine(MemoryStore())
    with pytest.raises(InvalidPattern, match=r"unterminated subpattern at position 6"):
        engine.register(BAD, "q.build")  # guessed a regex from its characters
    with pytest.raises(InvalidPattern, match=r"nothing to repeat at position 0"):
        engine.register("*", "q.any", regex=True)
    assert list(engine.registrations()) == []
    engine.register("build_.*", "q.build")
    assert [r.pattern for r in engine.registrations()] == ["build_.*"]


def test_the_harness_refuses_it_too() -> None:
    with pytest.raises(InvalidPattern):
        ProcessHarness().register(BAD, lambda wi: None)


def test_a_register_message_with_an_invalid_regex_is_dead_lettered_with_its_reason() -> None:
    config = Config.load(
        None, environ={"HOME": "/nonexistent"}, events=False, queue_registrations="true"
    )
    letters = Recorder()
    service = EngineService(config, MemoryStore(), letters, engine_id="w1.c0")  # type: ignore[arg-type]
    body = wire.dumps(messages.register(BAD, "q.build", regex=True))
    outcome = service.handle(body)
    assert outcome.startswith("dead-lettered ")
    (letter,) = letters.letters
    assert letter["reason"] == (
        f"register refused: {BAD!r} is not a valid regular expression: missing ), "
        "unterminated subpattern at position 6"
    )
    assert wire.deadletter_body(letter) == body
    assert list(service.engine.registrations()) == []
    # a valid one still registers
    ok = service.handle(wire.dumps(messages.register("build_.*", "q.build", regex=True)))
    assert ok == "registered build_.* -> q.build"
    assert len(letters.letters) == 1


def test_boss_register_refuses_it_as_a_usage_error() -> None:
    result = CliRunner().invoke(
        main, ["register", BAD, "--queue", "q.build"], env={"BOSS_CONFIG": "/dev/null"}
    )
    assert result.exit_code == 2, result.output
    assert (
        f"Invalid value for PATTERN: {BAD!r} is not a valid regular expression: "
        "missing ), unterminated subpattern at position 6"
    ) in result.output
