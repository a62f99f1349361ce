"""sequence and participant (process-language.md sections 2 and 3).

Table-driven: a YAML snippet of steps, the launch fields, and the trace /
fields / params it must produce.
"""

from __future__ import annotations

import pytest

from engine.testing import ProcessHarness
from tests.engine.support import (
    START_ISO,
    answer,
    clean,
    dispatched_names,
    held,
    make,
    proc,
    register_tracers,
    run_proc,
)


@pytest.fixture
def h() -> ProcessHarness:
    """Tracers alpha..golf, tick, holders hold and hold_a..hold_d."""
    return make()


@pytest.fixture
def bare() -> ProcessHarness:
    """Nothing registered."""
    return make(registered=False)


# -- sequence -------------------------------------------------------------------

SEQUENCES = [
    pytest.param("- alpha\n- bravo\n- charlie", ["alpha", "bravo", "charlie"], id="strings"),
    pytest.param(
        "- sequence: [alpha, bravo]\n- charlie", ["alpha", "bravo", "charlie"], id="sequence-list"
    ),
    pytest.param(
        "- sequence:\n    steps: [alpha, bravo]\n- charlie",
        ["alpha", "bravo", "charlie"],
        id="sequence-steps-mapping",
    ),
    pytest.param("- sequence: []\n- echo: after", ["after"], id="empty-sequence"),
    pytest.param("- sequence:\n    steps: []\n- echo: after", ["after"], id="empty-sequence-steps"),
    pytest.param(
        """
        - sequence:
            - alpha
            - sequence:
                - bravo
                - sequence: [charlie]
            - delta
        - foxtrot
        """,
        ["alpha", "bravo", "charlie", "delta", "foxtrot"],
        id="nested",
    ),
    pytest.param(
        "- participant: alpha\n- participant: {ref: bravo}\n- charlie: {x: 1}",
        ["alpha", "bravo", "charlie"],
        id="participant-forms",
    ),
    pytest.param(
        "- echo: one\n- alpha\n- echo: two\n- noop\n- bravo",
        ["one", "alpha", "two", "bravo"],
        id="mixed-with-echo-noop",
    ),
]


@pytest.mark.parametrize(("steps", "trace"), SEQUENCES)
def test_sequence_order(h: ProcessHarness, steps: str, trace: list[str]) -> None:
    run = run_proc(h, steps)
    assert run.status == "finished"
    assert h.trace == trace


def test_sequence_passes_fields_from_child_to_child(h: ProcessHarness) -> None:
    def first(wi):
        wi.fields["a"] = 1

    def second(wi):
        h.trace.append(dict(clean(wi.fields), params=None))
        wi.fields["b"] = wi.fields["a"] + 1

    h.register("first", first)
    h.register("second", second)
    run = run_proc(h, "- first\n- set: {c: 3}\n- second", fields={"x": "in"})
    assert h.trace == [{"x": "in", "a": 1, "c": 3, "params": None}]
    assert run.fields == {"x": "in", "a": 1, "b": 2, "c": 3}


def test_sequence_waits_for_each_reply(h: ProcessHarness) -> None:
    run = run_proc(h, "- alpha\n- hold\n- bravo")
    assert run.status == "running"
    assert h.trace == ["alpha"]
    assert [p.name for p in run.positions] == ["hold"]
    answer(h, "hold", done=True)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]
    assert run.fields == {"done": True}


def test_launch_fields_and_definition_defaults(h: ProcessHarness) -> None:
    text = proc("- echo: '${status} ${who}'", head="fields: {status: SUCCESS, who: nobody}")
    run = h.launch(text, fields={"who": "world"}).wait()
    assert h.trace == ["SUCCESS world"]
    assert run.fields == {"status": "SUCCESS", "who": "world"}


def _nest(depth: int, leaf: list) -> list:
    steps = leaf
    for _ in range(depth):
        steps = [{"sequence": steps}]
    return steps


def test_deeply_nested_sequences_100_levels(h: ProcessHarness) -> None:
    body = _nest(100, [{"echo": "${expid}"}, "alpha"])
    run = h.launch({"name": "deep", "steps": [*body, {"echo": "out"}]}).wait()
    assert run.status == "finished"
    assert h.trace == ["0" + "_0" * 101, "alpha", "out"]


def test_deeply_nested_sequences_hold_and_resume(h: ProcessHarness) -> None:
    body = _nest(100, ["hold", "alpha"])
    run = h.launch({"name": "deep", "steps": [*body, "bravo"]}).wait()
    assert run.status == "running"
    wi = held(h, "hold")
    assert wi.fei["expid"] == "0" + "_0" * 101
    h.reply(wi)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]


# -- participants: the workitem -----------------------------------------------------


def test_workitem_envelope(h: ProcessHarness) -> None:
    text = proc("- alpha\n- hold", head='revision: "7"')
    run = h.launch(text, fields={"k": "v"}).wait()
    wi = held(h, "hold")
    assert wi.fei["wfid"] == run.wfid
    assert wi.fei["expid"] == "0_1"
    assert wi.fei["subid"]
    assert wi.fei["engine_id"]
    assert wi.participant_name == "hold"
    assert wi.wf_name == "t"
    assert wi.wf_revision == "7"
    assert wi.to_dict()["dispatched_at"] == START_ISO.replace("Z", ".000Z")
    assert wi.fields == {"k": "v", "params": {}}


def test_each_dispatch_has_its_own_subid(h: ProcessHarness) -> None:
    run_proc(h, "- alpha\n- alpha\n- bravo")
    subids = [wi.fei["subid"] for wi in h.dispatched]
    assert len(set(subids)) == 3
    assert [wi.fei["expid"] for wi in h.dispatched] == ["0_0", "0_1", "0_2"]


PARAMS = [
    pytest.param("- hold", {}, {}, id="bare-name"),
    pytest.param("- participant: hold", {}, {}, id="participant-name"),
    pytest.param("- hold: {x: 1, y: [a, b]}", {}, {"x": 1, "y": ["a", "b"]}, id="short-form"),
    pytest.param(
        "- participant: {ref: hold, x: 1, flag: true}", {}, {"x": 1, "flag": True}, id="ref-form"
    ),
    pytest.param(
        "- hold: {msg: 'build ${f:project} ok'}",
        {"project": "p1"},
        {"msg": "build p1 ok"},
        id="substituted",
    ),
    pytest.param(
        "- hold: {msg: 'build ${project} ok'}",
        {"project": "p1"},
        {"msg": "build p1 ok"},
        id="substituted-bare-field",
    ),
    pytest.param("- hold: {n: '${f:n}'}", {"n": 5}, {"n": "5"}, id="single-ref-is-text"),
    pytest.param(
        "- hold: {items: $f:lst}", {"lst": [1, {"a": 2}]}, {"items": [1, {"a": 2}]}, id="raw-list"
    ),
    pytest.param("- hold: {n: $f:n}", {"n": 5}, {"n": 5}, id="raw-number"),
    pytest.param("- hold: {m: '[${f:nope}]'}", {}, {"m": "[]"}, id="missing-is-empty"),
    pytest.param(
        "- hold: {cfg: {a: '${f:x}', b: ['${f:x}', 2]}}",
        {"x": "X"},
        {"cfg": {"a": "X", "b": ["X", 2]}},
        id="nested-substitution",
    ),
    pytest.param("- hold: {w: '${wfid}'}", {}, "WFID", id="wfid"),
    pytest.param(
        "- set: {'v:who': vv}\n- hold: {who: '${v:who}'}", {}, {"who": "vv"}, id="variable"
    ),
]


@pytest.mark.parametrize(("steps", "fields", "params"), PARAMS)
def test_participant_params(h: ProcessHarness, steps: str, fields: dict, params) -> None:
    run = run_proc(h, steps, fields=fields)
    wi = held(h, "hold")
    if params == "WFID":
        params = {"w": run.wfid}
    assert wi.params == params
    assert wi.fields["params"] == params
    assert {k: v for k, v in wi.fields.items() if k != "params"} == fields


def test_params_are_gone_after_the_step(h: ProcessHarness) -> None:
    seen = []

    def look(wi):
        seen.append(dict(wi.fields))

    h.register("look", look)
    run = run_proc(h, "- look: {x: 1}\n- look\n- look: {y: 2}")
    assert seen == [
        {"params": {"x": 1}},
        {"params": {}},
        {"params": {"y": 2}},
    ]
    assert run.fields == {}


def test_params_written_by_participant_do_not_stick(h: ProcessHarness) -> None:
    def meddle(wi):
        wi.fields["params"]["x"] = "changed"
        wi.fields["kept"] = wi.params["x"]

    h.register("meddle", meddle)
    run = run_proc(h, "- meddle: {x: 1}\n- echo: '${params}|${kept}'")
    assert h.trace == ["|changed"]
    assert run.fields == {"kept": "changed"}


def test_attribute_access_reads_fields_then_params(h: ProcessHarness) -> None:
    def peek(wi):
        h.trace.append((wi.project, wi.only_param))

    h.register("peek", peek)
    run_proc(h, "- peek: {project: from_param, only_param: p}", fields={"project": "field"})
    assert h.trace == [("field", "p")]


def test_participant_changes_fields(h: ProcessHarness) -> None:
    def builder(wi):
        wi.fields["built"] = wi.fields["project"] + "-1.0"
        wi.set_field("deep.er", True)
        del wi.fields["drop_me"]

    h.register("builder", builder)
    run = run_proc(
        h, "- builder\n- echo: '${built} ${deep.er}'", fields={"project": "p", "drop_me": 1}
    )
    assert h.trace == ["p-1.0 true"]
    assert run.fields == {"project": "p", "built": "p-1.0", "deep": {"er": True}}


def test_participant_can_replace_all_fields(h: ProcessHarness) -> None:
    def replace(wi):
        wi.fields = {"only": 1}

    h.register("replace", replace)
    run = run_proc(h, "- replace: {p: 1}", fields={"a": 1})
    assert run.fields == {"only": 1}


@pytest.mark.parametrize(
    ("result", "expected", "then"),
    [
        pytest.param(True, True, ["ok"], id="true"),
        pytest.param(False, False, ["ko"], id="false"),
    ],
)
def test_result_is_stored_in___result__(h: ProcessHarness, result, expected, then) -> None:
    def check(wi):
        wi.result = result

    h.register("check", check)
    run = run_proc(
        h,
        """
        - check
        - echo: ok
          if: "${__result__} == true"
        - echo: ko
          unless: "${__result__}"
        """,
    )
    assert run.fields["__result__"] is expected
    assert h.trace == then


def test_result_is_replaced_by_the_next_participant(h: ProcessHarness) -> None:
    h.register("yes", lambda wi: setattr(wi, "result", True))
    h.register("no", lambda wi: setattr(wi, "result", False))
    run = run_proc(h, "- yes\n- no")
    assert run.fields == {"__result__": False}


def test_msg_lines_accumulate(h: ProcessHarness) -> None:
    h.register("one", lambda wi: wi.msg.append("line one"))
    h.register("two", lambda wi: wi.msg.extend(["line two", "line three"]))
    run = run_proc(h, "- one\n- alpha\n- two")
    assert run.fields == {"msg": ["line one", "line two", "line three"]}


def test_msg_scalar_becomes_a_list(h: ProcessHarness) -> None:
    h.register("add", lambda wi: wi.msg.append("second"))
    run = run_proc(h, "- add", fields={"msg": "first"})
    assert run.fields == {"msg": ["first", "second"]}


# -- participant names and registrations ---------------------------------------------


def test_regex_registration_matches_whole_names(bare: ProcessHarness) -> None:
    h = bare
    h.register("build_.*", lambda wi: h.trace.append("builder:" + wi.participant_name))
    run = run_proc(h, "- build_arm\n- build_x86")
    assert run.status == "finished"
    assert h.trace == ["builder:build_arm", "builder:build_x86"]


def test_regex_registration_does_not_match_a_substring(bare: ProcessHarness) -> None:
    h = bare
    h.register("build_.*", lambda wi: h.trace.append(wi.participant_name))
    run = run_proc(h, "- build_ok\n- rebuild_x\n- build_never")
    assert run.status == "error"
    assert h.trace == ["build_ok"]
    assert "rebuild_x" in run.errors[0]["message"]


@pytest.mark.parametrize(
    ("order", "winner"),
    [
        pytest.param(("build_.*", "build_special"), "regex", id="regex-first"),
        pytest.param(("build_special", "build_.*"), "exact", id="exact-first"),
    ],
)
def test_first_registered_wins(bare: ProcessHarness, order, winner) -> None:
    h = bare
    handlers = {
        "build_.*": lambda wi: h.trace.append("regex"),
        "build_special": lambda wi: h.trace.append("exact"),
    }
    for pattern in order:
        h.register(pattern, handlers[pattern])
    run = run_proc(h, "- build_special\n- build_other")
    assert run.status == "finished"
    assert h.trace == [winner, "regex"]


REGISTRATIONS = [
    # registrations in order, name -> which registration serves it (None: unknown)
    pytest.param(
        ["x_.*", "x_a", ".*"], {"x_a": "x_.*", "x_b": "x_.*", "y": ".*"}, id="regex-exact-catchall"
    ),
    pytest.param(
        ["x_a", "x_.*", ".*"], {"x_a": "x_a", "x_b": "x_.*", "y": ".*"}, id="exact-regex-catchall"
    ),
    pytest.param([".*", "x_a"], {"x_a": ".*", "y": ".*"}, id="catchall-first"),
    pytest.param(
        ["a|b", "c"], {"a": "a|b", "b": "a|b", "c": "c", "ab": None}, id="alternation-is-anchored"
    ),
    pytest.param(
        ["pkg.build"], {"pkg.build": "pkg.build", "pkgXbuild": None}, id="lone-dot-is-a-plain-name"
    ),
    pytest.param(
        ["build_[0-9]+"],
        {"build_12": "build_[0-9]+", "build_": None, "build_1x": None},
        id="character-class",
    ),
]


@pytest.mark.parametrize(("patterns", "served"), REGISTRATIONS)
def test_registration_matching(
    bare: ProcessHarness, patterns: list[str], served: dict[str, str | None]
) -> None:
    h = bare
    for pattern in patterns:
        h.register(pattern, (lambda p: lambda wi: h.trace.append(p))(pattern))
    for name, pattern in served.items():
        h.trace.clear()
        run = run_proc(h, f"- participant: '{name}'")
        if pattern is None:
            assert run.status == "error", name
            assert name in run.errors[0]["message"]
        else:
            assert run.status == "finished", name
            assert h.trace == [pattern], name


def test_unregistered_participant_is_unknown_again(h: ProcessHarness) -> None:
    register_tracers(h, "temp")
    assert run_proc(h, "- temp").status == "finished"
    h.unregister("temp")
    run = run_proc(h, "- temp")
    assert run.status == "error"
    assert h.trace == ["temp"]


def test_registering_again_replaces_the_handler_in_place(bare: ProcessHarness) -> None:
    h = bare
    h.register("job_a", lambda wi: h.trace.append("exact-1"))
    h.register("job_.*", lambda wi: h.trace.append("regex"))
    h.register("job_a", lambda wi: h.trace.append("exact-2"))  # keeps its place: first
    run_proc(h, "- job_a\n- job_b")
    assert h.trace == ["exact-2", "regex"]


def test_unknown_participant_is_a_run_error_at_dispatch(h: ProcessHarness) -> None:
    run = run_proc(h, "- alpha\n- nobody_home\n- bravo")
    assert run.status == "error"
    assert h.trace == ["alpha"]
    [err] = run.errors
    assert "nobody_home" in err["message"]
    assert err["expid"] == "0_1"
    assert dispatched_names(h) == ["alpha"]


def test_unknown_participant_registered_later_then_replayed(h: ProcessHarness) -> None:
    run = run_proc(h, "- late_comer\n- alpha")
    assert run.status == "error"
    register_tracers(h, "late_comer")
    run.replay()
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["late_comer", "alpha"]


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param("- participant: '${f:who}'", id="participant-ref"),
        pytest.param("- participant: {ref: '${f:who}'}", id="participant-ref-mapping"),
        pytest.param("- '${f:who}'", id="string-step"),
        pytest.param("- 'b${f:rest}'", id="partial"),
    ],
)
def test_dynamic_participant_name(h: ProcessHarness, steps: str) -> None:
    run = run_proc(h, steps + "\n- alpha", fields={"who": "bravo", "rest": "ravo"})
    assert run.status == "finished"
    assert h.trace == ["bravo", "alpha"]


def test_dynamic_participant_name_empty_is_an_error(h: ProcessHarness) -> None:
    run = run_proc(h, "- participant: '${f:nobody}'\n- alpha")
    assert run.status == "error"
    assert h.trace == []


def test_participant_exception_is_a_run_error(h: ProcessHarness) -> None:
    def boom(wi):
        raise ValueError("disk full")

    h.register("boom", boom)
    run = run_proc(h, "- alpha\n- boom\n- bravo")
    assert run.status == "error"
    assert h.trace == ["alpha"]
    [err] = run.errors
    assert err["message"] == "disk full"
    assert err["participant"] == "boom"
    assert err["class"] == "ValueError"


def test_error_reply_from_a_held_participant(h: ProcessHarness) -> None:
    run = run_proc(h, "- hold\n- alpha")
    h.reply(held(h, "hold"), error="remote failure")
    run.wait()
    assert run.status == "error"
    assert run.errors[0]["message"] == "remote failure"
    assert h.trace == []


def test_forget_param_does_not_wait_for_a_reply(h: ProcessHarness) -> None:
    run = run_proc(h, "- hold: {forget: true}\n- alpha")
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert dispatched_names(h) == ["hold", "alpha"]
    assert h.dispatched[0].forget
    assert h.pending == {}


def test_forget_attribute_runs_detached_and_the_run_waits_for_it(h: ProcessHarness) -> None:
    run = run_proc(h, "- hold:\n  forget: true\n- alpha")
    assert h.trace == ["alpha"]
    assert run.status == "running"
    answer(h, "hold", late=1)
    run.wait()
    assert run.status == "finished"
    assert run.fields == {}


def test_duplicate_reply_is_applied_once(h: ProcessHarness) -> None:
    run = run_proc(h, "- hold\n- tick")
    wi = held(h, "hold")
    h.reply(wi)
    h.reply(wi)
    run.wait()
    assert run.status == "finished"
    assert run.fields == {"ticks": 1}
