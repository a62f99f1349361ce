"""JSON log lines (``engine.logformat``), the metrics server
(``engine.telemetry``) and the doctor's verdicts (``engine.doctor.Report``)."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from collections.abc import Iterator

import pytest

from engine import telemetry
from engine.doctor import FAIL, OK, WARN, Report
from engine.logformat import JsonFormatter, configure_logging, log_format, use_format


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back afterwards."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(x) for x in stream.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_extras(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    logging.getLogger("boss.worker").info(
        "step %s done", "0_1", extra={"wfid": "w-1", "expid": "0_1"}
    )
    logging.getLogger("boss.worker").debug("not at INFO")
    (line,) = _lines(out)
    assert line["level"] == "INFO" and line["logger"] == "boss.worker"
    assert line["message"] == "step 0_1 done"
    assert line["wfid"] == "w-1" and line["expid"] == "0_1"
    assert str(line["time"]).endswith("Z") and "T" in str(line["time"])
    assert "exception" not in line and "args" not in line and "msg" not in line


def test_an_exception_is_a_string_field(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    try:
        raise ValueError('bad "input"\nsecond line')
    except ValueError:
        logging.getLogger("boss.x").exception("it failed", extra={"obj": object()})
    (line,) = _lines(out)
    assert line["message"] == "it failed" and line["level"] == "ERROR"
    assert isinstance(line["exception"], str)
    assert "Traceback" in line["exception"] and 'ValueError: bad "input"' in line["exception"]
    assert str(line["obj"]).startswith("<object")  # not JSON: its str()


def test_text_stays_the_default_and_the_environment_wins() -> None:
    assert log_format(None, {}) == "text"
    assert log_format("json", {}) == "json"
    assert log_format("text", {"BOSS_LOG_FORMAT": "JSON"}) == "json"
    assert log_format("json", {"BOSS_LOG_FORMAT": "text"}) == "text"


def test_text_lines_keep_their_layout(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOSS_LOG_FORMAT", raising=False)
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out, text="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("boss.y").warning("plain")
    assert out.getvalue() == "WARNING boss.y: plain\n"


def test_use_format_switches_handlers_installed_elsewhere(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOSS_LOG_FORMAT", raising=False)
    out = io.StringIO()
    logging.basicConfig(stream=out, level="INFO", force=True)
    assert not use_format("text")
    assert use_format("json")
    assert all(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    logging.getLogger("celery").info("hello")
    assert _lines(out)[0]["message"] == "hello"


def test_the_participant_runtime_logs_json_on_request(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from participants.runtime import configure_logging as participant_logging

    monkeypatch.setenv("BOSS_LOG_FORMAT", "json")
    participant_logging("INFO")
    logging.getLogger("boss.participant").info("ready", extra={"wfid": "w-2"})
    line = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert line["message"] == "ready" and line["wfid"] == "w-2"


def test_the_metrics_server_serves_its_registry() -> None:
    port = telemetry.serve(telemetry.TRACE, 0, "127.0.0.1")
    assert port
    telemetry.count_events(stored=3, duplicates=1, invalid=0, warned=0)
    telemetry.count_message("launch")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'boss_trace_events_total{outcome="stored"}' in text
    assert "boss_engine_messages_total" not in text  # the worker's registry is apart


def test_a_port_taken_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    port = telemetry.serve(telemetry.WORKER, 0, "127.0.0.1")
    assert port
    assert telemetry.serve(telemetry.WORKER, port, "127.0.0.1") is None
    assert "cannot serve" in caplog.text


@pytest.mark.parametrize(
    ("statuses", "code"),
    [([OK, OK], 0), ([OK, WARN], 2), ([WARN, FAIL, OK], 1), ([], 0)],
)
def test_the_exit_status_of_a_report(statuses: list[str], code: int) -> None:
    report = Report()
    for n, status in enumerate(statuses):
        report.add(f"c{n}", status, "found", "fix")
    assert report.exit_code == code
    data = report.as_dict()
    assert data["exit_code"] == code
    assert all((f["fix"] == "") == (f["status"] == OK) for f in data["findings"])
