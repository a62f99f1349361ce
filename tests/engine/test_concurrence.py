"""concurrence and concurrent_iterator (process-language.md section 2.1).

Branch replies arrive in an order the test chooses: branches are held by
``reply=False`` participants and answered with ``h.reply`` one by one.
"""

from __future__ import annotations

import copy
import textwrap
from typing import Any

import pytest

from engine.testing import ProcessHarness
from tests.engine.support import (
    answer,
    cancelled_names,
    clean,
    dispatched_names,
    held,
    make,
    run_proc,
)


@pytest.fixture
def h() -> ProcessHarness:
    """Tracers alpha..golf, tick, holders hold and hold_a..hold_d."""
    return make()


def answer_item(h: ProcessHarness, participant: str, item: Any, **fields: Any) -> None:
    """Reply for the workitem held for ``participant`` whose param ``item``
    is ``item``."""
    [wi] = [w for w in h.pending_for(participant) if w.params.get("item") == item]
    wi.fields.update(fields)
    h.reply(wi)


ABC = """
- concurrence:
    - hold_a
    - hold_b
    - hold_c
- alpha
"""


# -- parallelism, forms -----------------------------------------------------------------


def test_branches_are_applied_in_parallel(h: ProcessHarness) -> None:
    run = run_proc(h, ABC)
    assert run.status == "running"
    assert dispatched_names(h) == ["hold_a", "hold_b", "hold_c"]
    assert sorted(p.name for p in run.positions) == ["hold_a", "hold_b", "hold_c"]
    assert [wi.fei["expid"] for wi in h.dispatched] == ["0_0_0", "0_0_1", "0_0_2"]


@pytest.mark.parametrize(
    "order",
    [
        ("hold_a", "hold_b", "hold_c"),
        ("hold_c", "hold_b", "hold_a"),
        ("hold_b", "hold_c", "hold_a"),
    ],
)
def test_concurrence_ends_when_all_branches_replied(h: ProcessHarness, order) -> None:
    run = run_proc(h, ABC)
    for i, name in enumerate(order):
        assert h.trace == []
        answer(h, name, **{name: i})
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert cancelled_names(h) == []


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param("- concurrence:\n    branches: [alpha, bravo, charlie]", id="mapping"),
        pytest.param("- concurrence: [alpha, bravo, charlie]", id="list"),
        pytest.param(
            "- concurrence:\n    - alpha\n    - sequence: [bravo]\n    - participant: charlie",
            id="mixed-branches",
        ),
    ],
)
def test_concurrence_forms(h: ProcessHarness, steps: str) -> None:
    run = run_proc(h, steps + "\n- echo: done")
    assert run.status == "finished"
    assert sorted(h.trace[:3]) == ["alpha", "bravo", "charlie"]
    assert h.trace[3] == "done"


def test_every_branch_gets_a_copy_of_the_workitem(h: ProcessHarness) -> None:
    def mutate(wi):
        wi.fields["shared"].append(wi.participant_name)

    h.register("m1", mutate)
    h.register("m2", mutate)
    run = run_proc(h, "- concurrence: [m1, m2]", fields={"shared": []})
    assert run.status == "finished"
    assert [wi.fields["shared"] for wi in h.dispatched] == [[], []]
    assert run.fields == {"shared": ["m1"]}


def test_interleaved_sequences(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            - sequence: [hold_a, alpha]
            - sequence: [hold_b, bravo]
        - charlie
        """,
    )
    answer(h, "hold_b")
    assert h.trace == ["bravo"]
    answer(h, "hold_a")
    run.wait()
    assert h.trace == ["bravo", "alpha", "charlie"]
    assert run.status == "finished"


def test_nested_concurrences(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            - concurrence: [hold_a, hold_b]
            - hold_c
        - alpha
        """,
    )
    answer(h, "hold_a")
    answer(h, "hold_c")
    assert h.trace == []
    answer(h, "hold_b")
    run.wait()
    assert h.trace == ["alpha"]


# -- empty, skipped, big -----------------------------------------------------------------


@pytest.mark.parametrize(
    "conc",
    [
        pytest.param("- concurrence: []", id="empty-list"),
        pytest.param("- concurrence:\n    branches: []", id="empty-branches"),
        pytest.param("- concurrence:\n    count: 1\n    branches: []", id="empty-with-count"),
        pytest.param(
            """
            - concurrence:
                - alpha:
                  if: "${f:go}"
                - hold:
                  if: "${f:go}"
                - sequence: [bravo]
                  unless: "${f:stay}"
            """,
            id="all-skipped",
        ),
        pytest.param(
            """
            - concurrence:
                merge_type: isolate
                branches:
                  - hold:
                    if: "${f:go} == true"
            """,
            id="all-skipped-isolate",
        ),
    ],
)
def test_empty_or_all_skipped_concurrence_replies_at_once(h: ProcessHarness, conc: str) -> None:
    steps = textwrap.dedent(conc).strip() + "\n- echo: after"
    run = run_proc(h, steps, fields={"go": False, "stay": True, "x": 1})
    assert run.status == "finished"
    assert h.trace == ["after"]
    assert dispatched_names(h) == []
    if "isolate" in conc:  # the skipped branch replied with the workitem it was given
        assert run.fields == {"0": {"go": False, "stay": True, "x": 1}}
    else:
        assert run.fields == {"go": False, "stay": True, "x": 1}


@pytest.mark.parametrize(
    ("merge", "result"),
    [
        pytest.param("first", {"go": False}, id="skipped-replied-first"),
        pytest.param("last", {"go": False, "b": 1}, id="held-replied-last"),
    ],
)
def test_some_branches_skipped(h: ProcessHarness, merge: str, result: dict) -> None:
    run = run_proc(
        h,
        f"""
        - concurrence:
            merge: {merge}
            branches:
              - alpha:
                if: "${{f:go}}"
              - hold_b
        - charlie
        """,
        fields={"go": False},
    )
    assert run.status == "running"
    answer(h, "hold_b", b=1)
    run.wait()
    assert h.trace == ["charlie"]
    assert run.fields == result


def test_two_hundred_branches(h: ProcessHarness) -> None:
    branches = [{"hold": {"item": i}} for i in range(200)]
    run = h.launch(
        {
            "name": "wide",
            "steps": [
                {"concurrence": {"merge_type": "isolate", "branches": branches}},
                "alpha",
            ],
        }
    ).wait()
    assert len(h.pending) == 200
    for i in reversed(range(200)):
        answer_item(h, "hold", i, n=i)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert sorted(run.fields, key=int) == [str(i) for i in range(200)]
    assert all(run.fields[str(i)] == {"n": i} for i in range(200))


def test_two_hundred_instant_branches(h: ProcessHarness) -> None:
    branches = [{"echo": f"b{i}"} for i in range(200)]
    run = h.launch({"name": "wide", "steps": [{"concurrence": branches}, "alpha"]}).wait()
    assert run.status == "finished"
    assert h.trace == [f"b{i}" for i in range(200)] + ["alpha"]


# -- count --------------------------------------------------------------------------------

COUNTS = [
    # count, reply order, replies needed, cancelled
    pytest.param(1, ["hold_b"], ["hold_a", "hold_c"], id="count-1"),
    pytest.param(2, ["hold_c", "hold_a"], ["hold_b"], id="count-2"),
    pytest.param(3, ["hold_c", "hold_a", "hold_b"], [], id="count-3"),
    pytest.param(5, ["hold_c", "hold_a", "hold_b"], [], id="count-over-size"),
    pytest.param(-1, ["hold_a", "hold_c"], ["hold_b"], id="count-minus-1"),
    pytest.param(-2, ["hold_b"], ["hold_a", "hold_c"], id="count-minus-2"),
    pytest.param(-7, ["hold_c"], ["hold_a", "hold_b"], id="count-minus-more-than-size"),
]


@pytest.mark.parametrize(("count", "replies", "cancelled"), COUNTS)
def test_count(h: ProcessHarness, count: int, replies: list[str], cancelled: list[str]) -> None:
    run = run_proc(
        h,
        f"""
        - concurrence:
            count: {count}
            branches: [hold_a, hold_b, hold_c]
        - alpha
        """,
    )
    for name in replies:
        assert h.trace == []
        answer(h, name, **{name: True})
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert sorted(cancelled_names(h)) == cancelled
    assert h.pending == {}
    assert run.fields == {replies[0]: True}  # merge: first, merge_type: override


def test_cancelled_branch_reply_is_ignored(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            branches: [hold_a, hold_b]
        - hold_c
        """,
    )
    late = held(h, "hold_b")
    answer(h, "hold_a", a=1)
    assert cancelled_names(h) == ["hold_b"]
    late.fields["b"] = 1
    h.reply(late)
    answer(h, "hold_c")
    run.wait()
    assert run.status == "finished"
    assert run.fields == {"a": 1}


def test_count_cancels_a_whole_branch_subtree(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            branches:
              - hold_a
              - sequence: [hold_b, alpha]
              - concurrence: [hold_c, hold_d]
        - bravo
        """,
    )
    answer(h, "hold_a")
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["bravo"]
    assert sorted(cancelled_names(h)) == ["hold_b", "hold_c", "hold_d"]


# -- wait_for, over_if, over_unless ----------------------------------------------------------

TAGGED = """
- concurrence:
    wait_for: {wait_for}
    branches:
      - participant: hold_a
        tag: ta
      - participant: hold_b
        tag: tb
      - hold_c
- alpha
"""


@pytest.mark.parametrize(
    ("wait_for", "replies", "cancelled"),
    [
        pytest.param("[tb]", ["hold_a", "hold_c", "hold_b"], [], id="tag-last"),
        pytest.param("[tb]", ["hold_b"], ["hold_a", "hold_c"], id="tag-first"),
        pytest.param("tb", ["hold_c", "hold_b"], ["hold_a"], id="single-string"),
        pytest.param("[ta, tb]", ["hold_b", "hold_c", "hold_a"], [], id="two-tags"),
        pytest.param("[ta, tb]", ["hold_a", "hold_b"], ["hold_c"], id="two-tags-early"),
    ],
)
def test_wait_for_tags(
    h: ProcessHarness, wait_for: str, replies: list[str], cancelled: list[str]
) -> None:
    run = run_proc(h, TAGGED.format(wait_for=wait_for))
    for name in replies:
        assert h.trace == []
        answer(h, name)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert sorted(cancelled_names(h)) == cancelled


def test_wait_for_a_tagged_sequence_branch(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            wait_for: [main]
            branches:
              - sequence: [hold_a, alpha]
                tag: main
              - hold_b
        - bravo
        """,
    )
    answer(h, "hold_a")
    run.wait()
    assert h.trace == ["alpha", "bravo"]
    assert cancelled_names(h) == ["hold_b"]


OVER = """
- concurrence:
    {cond}
    branches: [hold_a, hold_b, hold_c]
- alpha
"""


@pytest.mark.parametrize(
    ("cond", "replies", "cancelled"),
    [
        pytest.param(
            'over_if: "${f:done} == true"',
            [("hold_a", {"done": False}), ("hold_b", {"done": True})],
            ["hold_c"],
            id="over_if",
        ),
        pytest.param(
            'over_if: "${f:done}"',
            [("hold_c", {"done": True})],
            ["hold_a", "hold_b"],
            id="over_if-bare",
        ),
        pytest.param(
            'over_if: "${f:done}"',
            [("hold_a", {}), ("hold_b", {"done": 0}), ("hold_c", {"done": ""})],
            [],
            id="over_if-never",
        ),
        pytest.param(
            'over_unless: "${f:ok}"',
            [("hold_b", {"ok": True}), ("hold_a", {"ok": False})],
            ["hold_c"],
            id="over_unless",
        ),
        pytest.param(
            'over_unless: "${f:n} < 10"',
            [("hold_a", {"n": "12"})],
            ["hold_b", "hold_c"],
            id="over_unless-numeric-string",
        ),
        pytest.param(
            'over_if: "${f:score} >= 3"',
            [("hold_b", {"score": 2}), ("hold_c", {"score": 3})],
            ["hold_a"],
            id="over_if-typed",
        ),
    ],
)
def test_over_if_over_unless(h: ProcessHarness, cond: str, replies, cancelled) -> None:
    run = run_proc(h, OVER.format(cond=cond))
    for name, fields in replies:
        assert h.trace == []
        answer(h, name, **fields)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert sorted(cancelled_names(h)) == cancelled


def test_over_if_sees_the_reply_not_the_applied_workitem(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            over_if: "${f:done}"
            branches: [hold_a, hold_b]
        - alpha
        """,
        fields={"done": True},
    )
    assert h.trace == []
    answer(h, "hold_a", done=False)
    assert h.trace == []
    answer(h, "hold_b", done=False)
    run.wait()
    assert h.trace == ["alpha"]


def test_over_if_reply_does_not_take_precedence_in_the_merge(h: ProcessHarness) -> None:
    # spec: merge first = the first reply wins; ruote 2.3 would put the reply
    # that triggered over_if on top ("winner"): the engine follows the spec
    run = run_proc(
        h,
        """
        - concurrence:
            over_if: "${f:done}"
            branches: [hold_a, hold_b, hold_c]
        """,
    )
    answer(h, "hold_a", who="a", done=False)
    answer(h, "hold_b", who="b", done=True)
    run.wait()
    assert run.status == "finished"
    assert run.fields == {"who": "a", "done": False}


# -- remaining -----------------------------------------------------------------------------


def test_remaining_cancel_is_the_default(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            branches:
              - hold_a
              - sequence: [hold_b, bravo]
        - alpha
        """,
    )
    answer(h, "hold_a", a=1)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert cancelled_names(h) == ["hold_b"]
    assert run.fields == {"a": 1}


def test_remaining_forget_lets_branches_run_detached(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            remaining: forget
            branches:
              - hold_a
              - sequence: [hold_b, bravo]
        - alpha
        """,
    )
    answer(h, "hold_a", a=1)
    run.wait()
    assert h.trace == ["alpha"]
    assert cancelled_names(h) == []
    assert run.status == "running"  # the forgotten branch is still going
    answer(h, "hold_b", b=1)
    run.wait()
    assert h.trace == ["alpha", "bravo"]
    assert run.status == "finished"
    assert run.fields == {"a": 1}  # the main flow's fields


def test_remaining_forget_branch_ending_first(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            remaining: forget
            branches: [hold_a, hold_b]
        - hold_c
        """,
    )
    answer(h, "hold_a")
    answer(h, "hold_b", b=1)
    assert run.status == "running"
    answer(h, "hold_c", c=1)
    run.wait()
    assert run.status == "finished"
    assert run.fields == {"c": 1}


def test_forgotten_branch_keeps_its_variables_after_the_main_flow_ended(h: ProcessHarness) -> None:
    # BUG-103
    run = run_proc(
        h,
        """
        - set: {"v:x": X}
        - concurrence:
            count: 1
            remaining: forget
            branches:
              - alpha
              - sequence: [hold, {echo: "late x=${v:x}"}]
        """,
    )
    assert run.status == "running"
    answer(h, "hold")
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "late x=X"]


def test_forgotten_branch_sees_the_variables_while_the_main_flow_runs(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - set: {"v:x": X}
        - concurrence:
            count: 1
            remaining: forget
            branches:
              - alpha
              - sequence: [hold_a, {echo: "late x=${v:x}"}]
        - hold_b
        """,
    )
    answer(h, "hold_a")
    assert h.trace == ["alpha", "late x=X"]
    answer(h, "hold_b")
    run.wait()
    assert run.status == "finished"


def test_count_1_with_a_skipped_branch_ends_at_once(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            branches:
              - alpha:
                if: "false"
              - hold
        - bravo
        """,
    )
    assert run.status == "finished"
    assert h.trace == ["bravo"]
    assert h.pending == {}


def test_remaining_wait_cancels_and_merges_the_remaining(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            remaining: wait
            merge_type: isolate
            branches:
              - hold_a
              - sequence: [set: {seen: b}, hold_b]
              - hold_c
        - alpha
        """,
        fields={"x": 0},
    )
    answer(h, "hold_c", c=1)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert sorted(cancelled_names(h)) == ["hold_a", "hold_b"]
    assert set(run.fields) == {"0", "1", "2"}
    assert run.fields["2"] == {"x": 0, "c": 1}
    assert run.fields["0"] == {"x": 0}


def test_remaining_cancel_merges_only_the_replies(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            merge_type: isolate
            branches: [hold_a, hold_b, hold_c]
        """,
        fields={"x": 0},
    )
    answer(h, "hold_b", b=1)
    run.wait()
    assert run.fields == {"1": {"x": 0, "b": 1}}


# -- merge x merge_type ------------------------------------------------------------------------

IN = {"base": "in", "lst": ["in"], "m": {"in": 0, "deep": {"in": 0}}}


def branch_fields(i: int) -> dict[str, Any]:
    """What branch ``i`` replies with."""
    return {
        "base": "in",
        "who": f"b{i}",
        f"only{i}": i,
        "lst": ["in", i],
        "m": {"in": 0, "s": i, f"k{i}": i, "deep": {"in": 0, f"d{i}": i}},
    }


#: reply order: branch 1, then 2, then 0; ranking from the winner down
REPLY_ORDER = [1, 2, 0]
RANKING = {"first": [1, 2, 0], "last": [0, 2, 1], "highest": [0, 1, 2], "lowest": [2, 1, 0]}


def expected(merge: str, merge_type: str) -> dict[str, Any]:
    """The spec's merge, written out for the three branches above."""
    w, x, y = RANKING[merge]
    f = {i: branch_fields(i) for i in range(3)}
    if merge_type == "override":
        return f[w]
    if merge_type == "ignore":
        return copy.deepcopy(IN)
    if merge_type == "isolate":
        return {"0": f[0], "1": f[1], "2": f[2]}
    if merge_type == "stack":
        return {"stack": [f[w], f[x], f[y]]}
    if merge_type == "mix":
        return {**f[y], **f[x], **f[w]}
    out = {"base": "in", "who": f"b{w}", "only0": 0, "only1": 1, "only2": 2}
    m = {"in": 0, "s": w, "k0": 0, "k1": 1, "k2": 2}
    if merge_type == "union":
        out["lst"] = ["in", y, x, w]
        m["deep"] = f[w]["m"]["deep"]
    else:  # concat, deep
        out["lst"] = ["in", y, "in", x, "in", w]
        if merge_type == "concat":
            m["deep"] = f[w]["m"]["deep"]
        else:
            m["deep"] = {"in": 0, "d0": 0, "d1": 1, "d2": 2}
    out["m"] = m
    return out


MERGE_CASES = [
    pytest.param(merge, merge_type, id=f"{merge}-{merge_type}")
    for merge in ("first", "last", "highest", "lowest")
    for merge_type in ("override", "mix", "isolate", "stack", "union", "concat", "deep", "ignore")
]


@pytest.mark.parametrize(("merge", "merge_type"), MERGE_CASES)
def test_merge_matrix(h: ProcessHarness, merge: str, merge_type: str) -> None:
    run = run_proc(
        h,
        f"""
        - concurrence:
            merge: {merge}
            merge_type: {merge_type}
            branches: [hold_a, hold_b, hold_c]
        - hold_d
        """,
        fields=copy.deepcopy(IN),
    )
    names = ["hold_a", "hold_b", "hold_c"]
    for i in REPLY_ORDER:
        wi = held(h, names[i])
        wi.fields.clear()
        wi.fields.update(branch_fields(i))
        h.reply(wi)
    assert run.status == "running"
    after = held(h, "hold_d")
    assert clean({k: v for k, v in after.fields.items() if k != "params"}) == expected(
        merge, merge_type
    )


def test_default_merge_is_first_override(h: ProcessHarness) -> None:
    run = run_proc(h, ABC, fields={"x": 0})
    answer(h, "hold_c", x=3, c=True)
    answer(h, "hold_a", x=1, a=True)
    answer(h, "hold_b", x=2, b=True)
    run.wait()
    assert run.fields == {"x": 3, "c": True}


@pytest.mark.parametrize(
    ("merge_type", "result"),
    [
        pytest.param("union", ["a", "b", "c"], id="union"),
        pytest.param("concat", ["a", "b", "b", "c"], id="concat"),
    ],
)
def test_union_and_concat_of_two_lists(h: ProcessHarness, merge_type: str, result) -> None:
    run = run_proc(
        h,
        f"""
        - concurrence:
            merge_type: {merge_type}
            merge: last
            branches: [hold_a, hold_b]
        """,
    )
    answer(h, "hold_a", lst=["a", "b"])
    answer(h, "hold_b", lst=["b", "c"])
    run.wait()
    assert run.fields == {"lst": result}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(["a", "a"], ["b"], id="duplicates-in-the-winner"),
        pytest.param(["b"], ["a", "a"], id="duplicates-in-the-loser"),  # BUG-102
    ],
)
def test_union_leaves_no_duplicates(h: ProcessHarness, first, second) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            merge_type: union
            branches: [hold_a, hold_b]
        """,
    )
    answer(h, "hold_a", lst=first)
    answer(h, "hold_b", lst=second)
    run.wait()
    lst = run.fields["lst"]
    assert sorted(lst) == ["a", "b"]


def test_merge_with_count_uses_only_the_replies(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 2
            merge_type: mix
            merge: last
            branches: [hold_a, hold_b, hold_c]
        """,
        fields={"x": 0},
    )
    answer(h, "hold_c", x=3, c=1)
    answer(h, "hold_a", x=1, a=1)
    run.wait()
    assert run.fields == {"x": 1, "a": 1, "c": 1}


def test_ignore_keeps_the_applied_workitem(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            merge_type: ignore
            branches:
              - set: {a: 1}
              - tick
        - echo: "${a}|${ticks}|${x}"
        """,
        fields={"x": "kept"},
    )
    assert h.trace == ["||kept"]
    assert run.fields == {"x": "kept"}


# -- concurrent_iterator -----------------------------------------------------------------------


def test_concurrent_iterator_branch_per_item(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrent_iterator:
            on: [x, y, z]
            merge_type: isolate
            steps:
              - hold: {item: "${v:i}", index: "${v:ii}"}
        - alpha
        """,
    )
    assert run.status == "running"
    assert sorted((wi.params["item"], wi.params["index"]) for wi in h.pending.values()) == [
        ("x", "0"),
        ("y", "1"),
        ("z", "2"),
    ]
    for item in ("z", "x", "y"):
        answer_item(h, "hold", item, got=item)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert run.fields == {"0": {"got": "x"}, "1": {"got": "y"}, "2": {"got": "z"}}


@pytest.mark.parametrize(
    ("on", "fields", "items"),
    [
        pytest.param("[a, b]", {}, ["a", "b"], id="list"),
        pytest.param("'a, b ,c'", {}, ["a", "b", "c"], id="comma-string"),
        pytest.param("$f:lst", {"lst": [1, 2]}, ["1", "2"], id="raw-field"),
        pytest.param("'${f:csv}'", {"csv": "p,q"}, ["p", "q"], id="substituted-string"),
    ],
)
def test_concurrent_iterator_on(h: ProcessHarness, on: str, fields, items) -> None:
    run = run_proc(
        h,
        f"""
        - concurrent_iterator:
            on: {on}
            to: item
            steps:
              - echo: "${{v:item}}"
        """,
        fields=fields,
    )
    assert run.status == "finished"
    assert sorted(h.trace) == items


def test_concurrent_iterator_empty_list(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrent_iterator:
            on: $f:lst
            steps: [hold]
        - alpha
        """,
        fields={"lst": []},
    )
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert dispatched_names(h) == ["alpha"]


def test_concurrent_iterator_count(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrent_iterator:
            on: [a, b, c]
            count: 1
            steps:
              - hold: {item: "${v:i}"}
        - alpha
        """,
    )
    answer_item(h, "hold", "b", winner="b")
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert len(h.cancelled) == 2
    assert h.pending == {}
    assert run.fields == {"winner": "b"}


@pytest.mark.parametrize(
    ("merge", "merge_type", "result"),
    [
        pytest.param("first", "override", {"v": "c"}, id="first"),
        pytest.param("last", "override", {"v": "b"}, id="last"),
        pytest.param("highest", "override", {"v": "a"}, id="highest"),
        pytest.param("lowest", "override", {"v": "c"}, id="lowest"),
        pytest.param(
            "highest", "stack", {"stack": [{"v": "a"}, {"v": "b"}, {"v": "c"}]}, id="highest-stack"
        ),
        pytest.param("first", "mix", {"v": "c", "a": 1, "b": 1, "c": 1}, id="first-mix"),
    ],
)
def test_concurrent_iterator_merge(h: ProcessHarness, merge, merge_type, result) -> None:
    run = run_proc(
        h,
        f"""
        - concurrent_iterator:
            on: [a, b, c]
            merge: {merge}
            merge_type: {merge_type}
            steps:
              - hold: {{item: "${{v:i}}"}}
        """,
    )
    for item in ("c", "a", "b"):
        answer_item(h, "hold", item, v=item, **({item: 1} if merge_type == "mix" else {}))
    run.wait()
    assert run.fields == result


def test_concurrent_iterator_branches_have_their_own_variables(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrent_iterator:
            on: [a, b]
            steps:
              - hold: {item: "${v:i}"}
              - echo: "${v:i}/${v:ii}"
        """,
    )
    answer_item(h, "hold", "b")
    answer_item(h, "hold", "a")
    run.wait()
    assert h.trace == ["b/1", "a/0"]


def test_concurrence_cancelled_with_the_run(h: ProcessHarness) -> None:
    run = run_proc(h, ABC)
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    assert sorted(cancelled_names(h)) == ["hold_a", "hold_b", "hold_c"]
    assert h.trace == []
