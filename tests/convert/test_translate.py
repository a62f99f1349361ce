"""The translation, construct by construct, on snippets of real ruote DSL
(most of them lines of boss-standard-workflow's processes)."""

from __future__ import annotations

import pytest

from bossapp.pdef import PdefSyntaxError, convert
from engine.core.loader import load_definition
from tests.convert.support import conv, load12, pdef, step, steps

# -- the definition ------------------------------------------------------------------


def test_name_revision_body_and_subprocesses() -> None:
    text = (
        "Ruote.process_definition :name => 'BOSS_handle_SR', :revision => '0.2' do\n"
        "  sequence do\n"
        "    alpha\n"
        "  end\n"
        "  define 'do_log' do\n"
        "    sequence do\n"
        "      echo 'x'\n"
        "    end\n"
        "  end\n"
        "  define :name => 'do_log_error' do\n"
        "    cursor do\n"
        "      rewind\n"
        "    end\n"
        "  end\n"
        "end\n"
    )
    result = convert(text, "X.pdef")
    assert result.findings == []
    doc = load12(result.yaml)
    assert list(doc) == ["name", "revision", "steps", "subprocesses"]
    assert doc["name"] == "BOSS_handle_SR"
    assert doc["revision"] == "0.2"
    assert doc["steps"] == ["alpha"]
    assert doc["subprocesses"] == {
        "do_log": [{"echo": "x"}],
        "do_log_error": [{"cursor": ["rewind"]}],
    }


@pytest.mark.parametrize(
    "head",
    [
        "Ruote.process_definition 'p' do",
        "Ruote.define 'p' do",
        "Ruote::process_definition 'p' do",
        "Ruote.process_definition(:name => 'p') do",
        "pdef = Ruote.process_definition name: 'p' do",
    ],
)
def test_the_spellings_of_a_definition(head: str) -> None:
    doc = load12(convert(f"{head}\n  alpha\n  beta\nend\n").yaml)
    assert doc["name"] == "p"
    assert doc["steps"] == ["alpha", "beta"]


def test_a_nameless_definition_takes_the_file_name_and_a_numeric_revision_is_a_string() -> None:
    result = convert("Ruote.process_definition :revision => 2 do\n  alpha\nend\n", "dir/A.b_c.pdef")
    doc = load12(result.yaml)
    assert doc["name"] == "A.b_c"
    assert doc["revision"] == "2"


def test_process_level_attributes() -> None:
    doc = load12(
        convert(
            "Ruote.define 'p', :on_error => 'notify_admin', :timeout => '2d' do\n  alpha\nend\n"
        ).yaml
    )
    assert doc["on_error"] == "notify_admin"
    assert doc["timeout"] == "2d"


def test_a_file_without_a_definition_is_an_error() -> None:
    with pytest.raises(PdefSyntaxError, match=r"no Ruote\.process_definition"):
        convert("alpha\n")


# -- containers ------------------------------------------------------------------------


def test_sequence_and_concurrence() -> None:
    # a body that is one plain sequence is unwrapped: here it is not alone
    assert steps("sequence do\n  alpha\n  beta\nend\nomega")[0] == {"sequence": ["alpha", "beta"]}
    assert steps("sequence do\n  alpha\nend") == ["alpha"]
    assert step("concurrence do\n  alpha\n  beta\nend") == {"concurrence": ["alpha", "beta"]}
    assert step(
        "concurrence :count => '1', :remaining => 'forget', :merge => 'last',\n"
        "            :merge_type => 'union', :over_if => '${f:ok}', :wait_for => 'a, b' do\n"
        "  alpha\n"
        "end"
    ) == {
        "concurrence": {
            "branches": ["alpha"],
            "count": 1,
            "remaining": "forget",
            "merge": "last",
            "merge_type": "union",
            "over_if": "${f:ok}",
            "wait_for": ["a", "b"],
        }
    }


def test_cursor_and_repeat() -> None:
    assert step("cursor do\n  alpha\n  rewind\nend") == {"cursor": ["alpha", "rewind"]}
    assert step("cursor :break_if => '${f:status} != SUCCESS' do\n  alpha\nend") == {
        "cursor": {"steps": ["alpha"], "break_if": "${f:status} != SUCCESS"}
    }
    assert step(
        "repeat :timeout => '8h', :on_timeout => 'error' do\n"
        "  is_repo_published :project => '${v:wait_for}'\n"
        "  _break :if => '${f:__result__}'\n"
        "  wait '1m'\n"
        "end"
    ) == {
        "loop": [
            {"is_repo_published": {"project": "${v:wait_for}"}},
            {"break": None, "if": "${f:__result__}"},
            {"wait": "1m"},
        ],
        "timeout": "8h",
        "on_timeout": "error",
    }
    assert step("loop do\n  alpha\nend") == {"loop": ["alpha"]}


def test_iterators() -> None:
    assert step(
        "iterator :on_field => 'ev.actions', :to => 'v:action' do\n"
        "  sequence do\n"
        "    alpha\n"
        "  end\n"
        "end"
    ) == {"iterator": {"on": "$f:ev.actions", "to": "v:action", "steps": ["alpha"]}}
    assert step(
        "concurrent_iterator :on_field => 'project_pairs', :to_f => 'pair' do\n  alpha\nend"
    ) == {"concurrent_iterator": {"on": "$f:project_pairs", "to": "f:pair", "steps": ["alpha"]}}
    assert step("iterator :on_var => 'l', :to_var => 'x' do\n  alpha\nend") == {
        "iterator": {"on": "$v:l", "to": "v:x", "steps": ["alpha"]}
    }
    assert step("iterator :on_val => [1, 2], :to_field => 'n' do\n  alpha\nend") == {
        "iterator": {"on": [1, 2], "to": "f:n", "steps": ["alpha"]}
    }
    assert step("iterator :on => 'a, b', :to => 'x' do\n  alpha\nend") == {
        "iterator": {"on": "a, b", "to": "x", "steps": ["alpha"]}
    }
    assert step(
        "concurrent_iterator :on => 'a, b', :count => 1, :merge_type => 'stack' do\n  alpha\nend"
    ) == {
        "concurrent_iterator": {
            "on": "a, b",
            "count": 1,
            "merge_type": "stack",
            "steps": ["alpha"],
        }
    }


def test_if_with_test_positional_then_else_and_nesting() -> None:
    assert step(
        "_if :test => '${__result__} != true' do\n"
        "  sequence do\n"
        "    do_log :msg => 'no lock'\n"
        "    terminate\n"
        "  end\n"
        "  # else\n"
        "  do_log :msg => 'lock'\n"
        "end"
    ) == {
        "if": {
            "test": "${__result__} != true",
            "then": [{"do_log": {"msg": "no lock"}}, "terminate"],
            "else": [{"do_log": {"msg": "lock"}}],
        }
    }
    assert step("_if '${f:status} != SUCCESS' do\n  do_reject\nend") == {
        "if": {"test": "${f:status} != SUCCESS", "then": ["do_reject"]}
    }
    assert step("_if :test => '${__result__} != true' do set 'status' => 'FAIL' end") == {
        "if": {"test": "${__result__} != true", "then": [{"set": {"status": "FAIL"}}]}
    }
    assert step("_if :test => 'x' do\nend") == {"if": {"test": "x", "then": []}}


def test_unless_negates_the_test() -> None:
    assert step("_unless '${f:ok}' do\n  alpha\nend") == {
        "if": {"test": "not (${f:ok})", "then": ["alpha"]}
    }


def test_an_if_with_an_if_attribute_is_wrapped() -> None:
    assert step("_if :test => 'a', :if => 'b' do\n  alpha\nend") == {
        "sequence": [{"if": {"test": "a", "then": ["alpha"]}}],
        "if": "b",
    }


def test_conditions_are_kept_as_written() -> None:
    for cond in (
        '"${irc.req_channel}" != ""',
        '"${v:action.sourceproject}" not in ${v:sourceprojects}',
        "qa-vote in ${stages}",
        "${f:qa.selected_test_packages} != {}",
        '"${ev.state}" in ["new", "declined"]',
        "${ev.state} == declined or ${ev.state} == revoked",
    ):
        quoted = "'" + cond.replace("\\", "\\\\").replace("'", "\\'") + "'"
        assert step(f"alpha :if => {quoted}") == {"alpha": None, "if": cond}


# -- participants and subprocesses -------------------------------------------------------


def test_participants() -> None:
    assert step("alpha") == "alpha"
    assert step("obsticket :action => 'require', :lock_project => 'SR_${ev.id}'") == {
        "obsticket": {"action": "require", "lock_project": "SR_${ev.id}"}
    }
    assert step("participant 'alpha'") == "alpha"
    assert step("participant 'alpha', :x => 1") == {"alpha": {"x": 1}}
    assert step("participant :ref => 'req_changed_${ev.id}'") == {
        "participant": {"ref": "req_changed_${ev.id}"}
    }
    assert step("participant :ref => 'wait', :y => 2") == {"participant": {"ref": "wait", "y": 2}}
    assert step(
        'bugzilla :check_depends => \'True\', :trigger_words => ["Fixes", "fixes"],'
        " :n => 2.5, :on => true, :h => {'a' => nil}"
    ) == {
        "bugzilla": {
            "check_depends": "True",
            "trigger_words": ["Fixes", "fixes"],
            "n": 2.5,
            "on": True,
            "h": {"a": None},
        }
    }


def test_a_participant_named_like_a_subprocess_stays_a_participant() -> None:
    doc = load12(
        convert(
            "Ruote.define 'p' do\n  participant 'sub'\n  define 'sub' do\n    alpha\n  end\nend\n"
        ).yaml
    )
    assert doc["steps"] == [{"participant": {"ref": "sub"}}]


def test_subprocess_calls() -> None:
    assert step("subprocess :ref => 'do_${v:task}'") == {"subprocess": {"ref": "do_${v:task}"}}
    # (no subprocess x in the snippet: the loader would say so)
    assert step("subprocess 'x', :a => 'b'", loads=False) == {"subprocess": {"ref": "x", "a": "b"}}
    assert step("ref 'alpha'") == "alpha"


def test_a_subprocess_called_with_a_block_and_apply() -> None:
    text = pdef(
        """
        with_OBS_ticket :project => 'p' do
          sequence do
            alpha
          end
        end
        define 'with_OBS_ticket' do
          sequence do
            obsticket :action => 'get'
            apply
            obsticket :action => 'release'
          end
        end
        """
    )
    result = convert(text)
    assert result.findings == []
    doc = load12(result.yaml)
    assert doc["steps"] == [{"with_OBS_ticket": {"project": "p", "steps": ["alpha"]}}]
    assert doc["subprocesses"]["with_OBS_ticket"][1] == "apply"


def test_a_block_given_to_a_participant_is_reported() -> None:
    result = conv("alpha do\n  beta\nend")
    assert [f.construct for f in result.findings] == ["alpha do ... end"]


# -- fields and variables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ruote", "ours"),
    [
        ("set 'f:status' => 'FAILED'", {"set": {"f:status": "FAILED"}}),
        ("set 'status' => 'SUCCESS'", {"set": {"status": "SUCCESS"}}),
        ("set  'debug_dump' => 'True'", {"set": {"debug_dump": "True"}}),
        ('set "ev.id" => "${f:ev.project}_x"', {"set": {"ev.id": "${f:ev.project}_x"}}),
        ("set 'v:sourceprojects' => []", {"set": {"v:sourceprojects": []}}),
        ("set :f => 'hasLock', :val => 'true'", {"set": {"f:hasLock": "true"}}),
        ("set :field => 'x', :value => 1", {"set": {"f:x": 1}}),
        ("set :var => 'x', :val => {'a' => 1}", {"set": {"v:x": {"a": 1}}}),
        ("set :v => 'x', :val => nil", {"set": {"v:x": None}}),
        (
            "set :f => 'reviewer', :val => '${project}', :if => '\"${reviewer}\" == \"\"'",
            {"set": {"f:reviewer": "${project}"}, "if": '"${reviewer}" == ""'},
        ),
        (
            "set 'status' => 'FAIL', :unless => '${__result__}'",
            {"set": {"status": "FAIL"}, "unless": "${__result__}"},
        ),
        ("unset 'v:sourceprojects'", {"unset": "v:sourceprojects"}),
        ("unset :var => 'x'", {"unset": "v:x"}),
        ("unset :f => 'x'", {"unset": "f:x"}),
        ("unset 'a', 'b'", {"unset": ["a", "b"]}),
        ("inc 'v:list', :val => '${x}'", {"inc": {"v:list": "${x}"}}),
        ("inc 'v:n'", {"inc": "v:n"}),
        ("inc :var => 'n', :val => 2", {"inc": {"v:n": 2}}),
        ("push 'v:list', :val => 'x'", {"push": {"v:list": "x"}}),
    ],
)
def test_set_unset_inc_push(ruote: str, ours: object) -> None:
    assert step(ruote) == ours


# -- simple expressions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ruote", "ours"),
    [
        ("wait '1m'", {"wait": "1m"}),
        ("wait '${build_trial.keep_failed_for}'", {"wait": "${build_trial.keep_failed_for}"}),
        ("wait :for => '10m'", {"wait": {"for": "10m"}}),
        ("sleep :until => '2026-12-24T00:00:00Z'", {"wait": {"until": "2026-12-24T00:00:00Z"}}),
        (
            "listen :to => 'req_changed_${ev.id}', :upon => 'reply', :where => '${x} == 1'",
            {"listen": {"to": "req_changed_${ev.id}", "upon": "reply", "where": "${x} == 1"}},
        ),
        ("listen :to => :errors", {"listen": {"to": "errors"}}),
        (
            "listen :to => :errors, :class => 'ProcessError'",
            {"listen": {"to": "errors", "class": "ProcessError"}},
        ),
        (
            "listen :to => 'a', :merge => 'false', :wfid => true",
            {"listen": {"to": "a", "merge": False, "wfid": True}},
        ),
        (
            "echo 'process ${wfid}: SR#${ev.id} ERROR'",
            {"echo": "process ${wfid}: SR#${ev.id} ERROR"},
        ),
        (
            "error 'Project config update failed', :unless => '${__result__}'",
            {"error": "Project config update failed", "unless": "${__result__}"},
        ),
        ("error", "error"),
        ("terminate", "terminate"),
        ("cancel_process", "terminate"),
        ("terminate :unless => 'x'", {"terminate": None, "unless": "x"}),
        ("_break", "break"),
        ("rewind", "rewind"),
        ("skip 2", {"skip": 2}),
        ("_skip", "skip"),
        ("back 1", {"back": 1}),
        ("jump :to => 'publish'", {"jump": "publish"}),
        ("jump 'publish'", {"jump": "publish"}),
        ("reset", "reset"),
        ("noop", "noop"),
        ("cancel :ref => 'remove_build_trial_thread'", {"cancel": "remove_build_trial_thread"}),
        ("cancel :tag => 't'", {"cancel": "t"}),
        ("reserve :mutex => 'm' do\n  alpha\nend", {"reserve": {"mutex": "m", "steps": ["alpha"]}}),
    ],
)
def test_simple_expressions(ruote: str, ours: object) -> None:
    assert step(ruote) == ours


# -- common attributes -------------------------------------------------------------------


def test_common_attributes_become_sibling_keys() -> None:
    assert step(
        "sequence :forget => true, :tag => 'remove_build_trial_thread' do\n  alpha\nend"
    ) == {"sequence": ["alpha"], "forget": True, "tag": "remove_build_trial_thread"}
    assert step("do_log_error :flank => true") == {"do_log_error": None, "flank": True}
    assert step(
        "alpha :x => 1, :timeout => '1h', :on_timeout => 'error', :on_error => 'undo',"
        " :on_cancel => 'clean', :forget => 'true', :retry => 3"
    ) == {
        "alpha": {"x": 1},
        "timeout": "1h",
        "on_timeout": "error",
        "on_error": "cancel",
        "on_cancel": "clean",
        "forget": True,
        "retry": 3,
    }


# -- comments --------------------------------------------------------------------------------


def test_comments_are_kept_in_place() -> None:
    text = (
        "# The definition\n"
        "Ruote.process_definition 'p' do\n"
        "  sequence do\n"
        "\n"
        "    # first step\n"
        "    #   :debug_dump => 'True'\n"
        "    alpha  # trailing\n"
        "\n"
        "    _if :test => 'x' do\n"
        "      beta\n"
        "      # _else\n"
        "      gamma\n"
        "    end\n"
        "    # at the end\n"
        "  end\n"
        "\n"
        "  # the logger\n"
        "  define 'do_log' do\n"
        "    echo 'x'\n"
        "  end\n"
        "end\n"
    )
    out = convert(text).yaml
    assert out == (
        "# The definition\n"
        "name: p\n"
        "\n"
        "steps:\n"
        "  # first step\n"
        "  #   :debug_dump => 'True'\n"
        "  - alpha  # trailing\n"
        "\n"
        "  - if:\n"
        "      test: x\n"
        "      then:\n"
        "        - beta\n"
        "      else:\n"
        "        # _else\n"
        "        - gamma\n"
        "  # at the end\n"
        "\n"
        "subprocesses:\n"
        "  # the logger\n"
        "  do_log:\n"
        "    - echo: x\n"
    )


def test_a_trailing_comment_goes_on_the_first_line_of_its_step() -> None:
    out = conv('_break :if => \'"${v:check}" == ""\'  # deal with the sentinel value').yaml
    assert "  - break:  # deal with the sentinel value\n" in out


def test_comments_keep_their_relative_indentation() -> None:
    out = conv("alpha\n  # deeper\n# shallower\nbeta").yaml
    assert "  - alpha\n    # deeper\n  # shallower\n  - beta\n" in out


# -- strings in the YAML ----------------------------------------------------------------------


def test_strings_yaml_would_read_as_something_else_are_quoted() -> None:
    for value in ("True", "yes", "on", "1", "0o17", "1e3", "null", "", "a: b", "#c", "x, y"):
        assert step(f"set 'k' => {value!r}") == {"set": {"k": value}}


def test_escapes_survive() -> None:
    assert step('echo "tab\\there \\"quoted\\" \\u00e9"') == {"echo": 'tab\there "quoted" é'}


# -- not translated ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ruote", "construct"),
    [
        ("cron '0 9 * * *' do\n  alpha\nend", "cron"),
        ("every '1h' do\n  alpha\nend", "every"),
        ("add_branches 'x'", "add_branches"),
        ("filter :in => [{:field => 'x', :type => 'string'}]", "filter"),
        ("given '${x}' do\n  of 'a' do\n    alpha\n  end\nend", "given"),
        ("once '${f:done}' do\n  alpha\nend", "once"),
        ("lose do\n  alpha\nend", "lose"),
        ("undo :ref => 'x'", "undo"),
        ("redo :ref => 'x'", "redo"),
        ("save :to_field => 'x'", "save"),
        ("restore :from_field => 'x'", "restore"),
        ("let do\n  alpha\nend", "let"),
        ("dec 'v:x'", "dec"),
        ("alpha :lose => true", ":lose"),
        ('alpha :msg => "hi #{name}"', "#{...}"),
        ("echo '${r:1 + 2}'", "${r:...}"),
        ("x = 1", "Ruby code"),
        ("alpha :at => Time.now", "Ruby code"),
        ("iterator :from => 1, :to => 3 do\n  alpha\nend", "iterator :from"),
        ("_if do\n  equals :field_value => 'x', :other_value => 'y'\n  alpha\nend", "if"),
        ("listen :to => 'x' do\n  alpha\nend", "listen do ... end"),
        ("sequence do\n  define 'inner' do\n    alpha\n  end\nend", "define"),
        ("alpha 'positional'", "alpha"),
        ("wait", "wait"),
    ],
)
def test_what_is_not_translated_is_reported_and_replaced_by_a_noop(
    ruote: str, construct: str
) -> None:
    result = conv(ruote + "\nomega")
    assert [f.construct for f in result.findings] == [construct]
    finding = result.findings[0]
    assert str(finding).startswith(f"t.pdef:{finding.line}:{finding.col}: {construct}: ")
    assert finding.line >= 2  # lines of the definition (line 1 is its head)
    load_definition(result.yaml, "t.yaml")  # the noop keeps it valid
    doc = load12(result.yaml)
    flat = repr(doc["steps"])
    assert "omega" in flat  # what follows is translated
    assert "noop" in flat
    first = ruote.split("\n")[1 if ruote.startswith("sequence") else 0].strip()
    assert "NOT TRANSLATED (pdef line" in result.yaml
    assert first in result.yaml


def test_a_multi_line_untranslated_statement_is_quoted_whole() -> None:
    result = conv("cron '0 9 * * *' do\n  alpha\nend")
    assert (
        "  # NOT TRANSLATED (pdef lines 2-4):\n"
        "  #   cron '0 9 * * *' do\n"
        "  #     alpha\n"
        "  #   end\n"
        "  - noop\n"
    ) in result.yaml


def test_the_finding_points_at_the_construct() -> None:
    result = convert(pdef('alpha :x => 1,\n      :msg => "a #{b}"'), "Y.pdef")
    assert [str(f) for f in result.findings] == [
        "Y.pdef:3:17: #{...}: Ruby string interpolation is not translatable"
    ]


def test_a_statement_outside_the_definition_is_reported() -> None:
    result = convert("require 'x'\nRuote.define 'p' do\n  alpha\nend\n", "Z.pdef")
    assert [f.construct for f in result.findings] == ["Ruby code"] or [
        f.construct for f in result.findings
    ] == ["require"]
    assert "# NOT TRANSLATED (pdef line 1): require 'x'" in result.yaml
    assert load12(result.yaml)["steps"] == ["alpha"]


def test_a_complete_translation_counts_its_statements() -> None:
    result = conv("alpha\nsequence do\n  beta\nend")
    assert result.complete
    assert result.statements == 3


def test_a_block_of_comments_only_is_an_empty_list() -> None:
    result = conv("_if :test => 'x' do\n  # nothing yet\nend\nomega")
    assert "      then: []\n        # nothing yet\n" in result.yaml
    assert load12(result.yaml)["steps"][0] == {"if": {"test": "x", "then": []}}


def test_subprocesses_that_cannot_be_named_are_reported() -> None:
    text = pdef(
        """
        alpha
        define 'a' do
          beta
        end
        define 'a' do
          gamma
        end
        define 'wait' do
          gamma
        end
        """
    )
    result = convert(text, "t.pdef")
    assert [(f.line, f.construct) for f in result.findings] == [(6, "define"), (9, "define")]
    assert "'a' is defined twice" in result.findings[0].why
    assert load12(result.yaml)["subprocesses"] == {"a": ["beta"]}
