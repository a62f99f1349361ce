"""Every real BOSS process (boss-standard-workflow's ``.pdef`` files, read in
place from the compat data: never copied into the project) converts with
nothing left untranslated, keeps its comments, loads with the engine's
loader and runs in the harness."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bossapp.pdef import convert
from bossapp.pdef.lexer import tokenize
from engine.core.loader import load_definition
from engine.testing import ProcessHarness
from tests.convert.support import load12

#: the six definitions boss-standard-workflow ships (the test of the whole
#: directory below also catches any new one)
PDEFS = [
    "BUILD_SUCCESS.auto_ci",
    "SRCSRV_COMMIT.notify_failure",
    "SRCSRV_DELETE_PACKAGE.delete_webhook",
    "SRCSRV_REQUEST_CREATE.BOSS_handle_SR",
    "SRCSRV_REQUEST_STATECHANGE.BOSS_handle_SR",
    "promotion_reminder",
]


def converted(processes: Path, stem: str) -> tuple[str, str]:
    path = processes / f"{stem}.pdef"
    text = path.read_text(encoding="utf-8")
    result = convert(text, str(path))
    assert [str(f) for f in result.findings] == []
    return text, result.yaml


def test_every_pdef_of_the_directory_converts_completely(processes: Path) -> None:
    files = sorted(processes.glob("*.pdef"))
    assert {p.name.removesuffix(".pdef") for p in files} >= set(PDEFS)
    for path in files:
        result = convert(path.read_text(encoding="utf-8"), str(path))
        assert [str(f) for f in result.findings] == [], path.name
        load_definition(result.yaml, f"{path.stem}.yaml")


@pytest.mark.parametrize("stem", PDEFS)
def test_it_loads_and_keeps_every_comment(processes: Path, stem: str) -> None:
    text, out = converted(processes, stem)
    definition = load_definition(out, f"{stem}.yaml")
    ruote_name = re.search(r"process_definition\s*:?(?:name\s*=>\s*)?'([^']+)'", text)
    assert ruote_name is not None
    assert definition.name == ruote_name.group(1)
    defined = re.findall(r"^\s*define\s+'([^']+)'", text, re.M)
    assert sorted(definition.subprocesses) == sorted(defined)
    source_comments = [str(t.value) for t in tokenize(text) if t.kind == "comment"]
    out_comments = [
        line.strip()[1:].rstrip() for line in out.splitlines() if line.strip()[:1] == "#"
    ]
    trailing = [m.group(1).rstrip() for m in re.finditer(r"\S  #(.*)$", out, re.M)]
    for comment in source_comments:
        assert comment in out_comments + trailing, comment


def walk(node: Any) -> list[Any]:
    """Every mapping and string in a loaded YAML tree."""
    found = [node]
    if isinstance(node, dict):
        for v in node.values():
            found += walk(v)
    elif isinstance(node, list):
        for v in node:
            found += walk(v)
    return found


def test_boss_handle_sr_in_detail(processes: Path) -> None:
    text, out = converted(processes, "SRCSRV_REQUEST_CREATE.BOSS_handle_SR")
    assert len(text.splitlines()) == 563
    doc = load12(out)
    assert doc["name"] == "BOSS_handle_SR"
    assert doc["revision"] == "0.2"
    main = doc["steps"]
    assert main[0] == {"set": {"debug_trace": "True"}}
    assert {"do_log_error": None, "flank": True} in main
    assert {"set": {"f:reviewer": "${project}"}, "if": '"${reviewer}" == ""'} in main
    ticket = next(s for s in main if isinstance(s, dict) and "with_OBS_ticket" in s)
    cursor = ticket["with_OBS_ticket"]["steps"][0]["cursor"]
    assert cursor["break_if"] == "${f:status} != SUCCESS"
    assert cursor["steps"][-1] == {"qa_vote": None, "if": "qa-vote in ${stages}"}
    subs = doc["subprocesses"]
    assert "apply" in subs["with_OBS_ticket"]
    assert subs["do_log_error"][0]["cursor"][0] == {"listen": {"to": "errors"}}
    prechecks = walk(subs["do_prechecks"])
    assert {"inc": {"v:sourceprojects": "${v:action.sourceproject}"}} in prechecks
    iterator = next(n["iterator"] for n in prechecks if isinstance(n, dict) and "iterator" in n)
    assert iterator["on"] == "$f:ev.actions" and iterator["to"] == "v:action"
    assert {"participant": {"ref": "${v:check}"}} in prechecks
    assert subs["do_wait_for_build"][1]["timeout"] == "8h"
    assert "  # _else\n" in out.replace("          ", "  ")
    assert "# NOT TRANSLATED" not in out


def test_promotion_reminder_iterates_into_a_field(processes: Path) -> None:
    _, out = converted(processes, "promotion_reminder")
    (_, _, it) = load12(out)["steps"]
    assert it["concurrent_iterator"]["to"] == "f:pair"
    assert it["concurrent_iterator"]["on"] == "$f:project_pairs"


def test_auto_ci_compares_with_the_empty_mapping(processes: Path) -> None:
    _, out = converted(processes, "BUILD_SUCCESS.auto_ci")
    assert "${f:qa.selected_test_packages} != {}" in out
    assert {"subprocess": {"ref": "do_${v:task}"}} in walk(load12(out)["steps"])


def test_the_converted_boss_handle_sr_runs(processes: Path) -> None:
    """The converted process runs in the harness with every participant
    answering True: prechecks, the ticket block, accept, unlock; the flanked
    error listener is cancelled when the main flow ends."""
    _, out = converted(processes, "SRCSRV_REQUEST_CREATE.BOSS_handle_SR")
    seen: list[str] = []

    def participant(wi: Any) -> None:
        seen.append(wi.participant_name)
        wi.result = True

    with ProcessHarness() as h:
        h.register(".*", participant)
        run = h.launch(
            out,
            fields={
                "ev": {"id": "7", "actions": [{"type": "submit", "sourceproject": "home:x"}]},
                "stages": ["prechecks"],
                "prechecks": ["check_a", ""],
                "project": "Mer:Core",
                "irc": {"log_channel": "", "req_channel": ""},
            },
        )
        run.wait(timeout=30)
        assert run.status == "finished", run.errors
    assert seen[:4] == ["obsticket", "get_userdata", "is_repo_published", "check_a"]
    assert seen[-1] == "obsticket"
    assert seen.count("obsticket") == 4  # require, get, release (ticket), release (SR)
