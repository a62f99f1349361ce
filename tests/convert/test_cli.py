"""``boss convert`` through click's CliRunner: outputs, reports, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from bossapp.cli import main
from tests.convert.support import load12

GOOD = "Ruote.process_definition 'p' do\n  sequence do\n    alpha :x => 1\n  end\nend\n"
PARTIAL = "Ruote.process_definition 'p' do\n  alpha\n  cron '0 9 * * *' do\n    beta\n  end\nend\n"
BROKEN = "Ruote.process_definition 'p' do\n  alpha :x => 'oops\nend\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["convert", *args], catch_exceptions=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_one_file_to_stdout(tmp_path: Path) -> None:
    src = write(tmp_path, "A.p.pdef", GOOD)
    r = run(str(src))
    assert r.exit_code == 0, r.stderr
    assert load12(r.stdout) == {"name": "p", "steps": [{"alpha": {"x": 1}}]}
    assert "A.p.yaml: ok (p, 1 steps)" in r.stderr


def test_output_dir_keeps_the_robogrator_name_and_writes_nothing_else(tmp_path: Path) -> None:
    src = write(tmp_path, "SRCSRV_REQUEST_CREATE.BOSS_handle_SR.pdef", GOOD)
    write(tmp_path, "SRCSRV_REQUEST_CREATE.BOSS_handle_SR.conf", "[x]\n")
    out = tmp_path / "out"
    r = run(str(src), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["SRCSRV_REQUEST_CREATE.BOSS_handle_SR.yaml"]
    assert r.stdout.strip().endswith("SRCSRV_REQUEST_CREATE.BOSS_handle_SR.yaml: ok (p, 1 steps)")
    assert r.stderr == ""


def test_untranslated_constructs_exit_1_and_are_reported_on_stderr(tmp_path: Path) -> None:
    src = write(tmp_path, "B.pdef", PARTIAL)
    out = tmp_path / "out"
    r = run(str(src), "-o", str(out))
    assert r.exit_code == 1
    assert f"{src}:3:3: cron: " in r.stderr
    assert "1 construct(s) not translated" in r.stderr
    text = (out / "B.yaml").read_text()
    assert "# NOT TRANSLATED (pdef lines 3-5):" in text
    assert load12(text)["steps"] == ["alpha", "noop"]
    assert "B.yaml: ok (p, 2 steps)" in r.stdout


def test_a_file_that_does_not_parse_exits_2_naming_where(tmp_path: Path) -> None:
    src = write(tmp_path, "C.pdef", BROKEN)
    r = run(str(src))
    assert r.exit_code == 2
    assert r.stderr.strip() == f"{src}:2:15: unterminated string"
    assert r.stdout == ""


def test_unexpected_end(tmp_path: Path) -> None:
    src = write(tmp_path, "D.pdef", GOOD + "end\n")
    r = run(str(src))
    assert r.exit_code == 2
    assert r.stderr.strip() == f"{src}:6:1: unexpected 'end'"


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    r = run(str(tmp_path / "nope.pdef"))
    assert r.exit_code == 2
    assert "nope.pdef: cannot read" in r.stderr


def test_several_files_need_an_output_dir(tmp_path: Path) -> None:
    a = write(tmp_path, "a.pdef", GOOD)
    b = write(tmp_path, "b.pdef", GOOD)
    r = run(str(a), str(b))
    assert r.exit_code == 2
    assert "-o DIR" in r.stderr
    r = run(str(a), str(b), "-o", str(tmp_path / "o"))
    assert r.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.yaml", "b.yaml"]


def test_the_worst_file_decides_the_exit_code(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pdef", GOOD)
    partial = write(tmp_path, "partial.pdef", PARTIAL)
    broken = write(tmp_path, "broken.pdef", BROKEN)
    out = tmp_path / "o"
    assert run(str(good), str(partial), "-o", str(out)).exit_code == 1
    r = run(str(good), str(partial), str(broken), "-o", str(out))
    assert r.exit_code == 2
    assert sorted(p.name for p in out.iterdir()) == ["good.yaml", "partial.yaml"]


def test_json_report(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pdef", GOOD)
    partial = write(tmp_path, "partial.pdef", PARTIAL)
    broken = write(tmp_path, "broken.pdef", BROKEN)
    out = tmp_path / "o"
    r = run(str(good), str(partial), str(broken), "-o", str(out), "--json")
    assert r.exit_code == 2
    assert r.stderr == ""
    report = json.loads(r.stdout)
    assert [e["file"] for e in report] == [str(good), str(partial), str(broken)]
    assert report[0]["output"] == str(out / "good.yaml")
    assert report[0]["not_translated"] == []
    assert report[0]["check"] == {"ok": True, "problems": []}
    (finding,) = report[1]["not_translated"]
    assert finding["line"] == 3 and finding["col"] == 3 and finding["construct"] == "cron"
    assert report[2]["error"] == f"{broken}:2:15: unterminated string"


def test_json_without_output_dir_carries_the_yaml(tmp_path: Path) -> None:
    src = write(tmp_path, "good.pdef", GOOD)
    r = run(str(src), "--json")
    assert r.exit_code == 0
    (entry,) = json.loads(r.stdout)
    assert load12(entry["yaml"])["name"] == "p"
    assert entry["statements"] == 2


def test_the_real_processes_convert_with_exit_0(compat_dir: Path, tmp_path: Path) -> None:
    files = sorted((compat_dir / "boss-standard-workflow" / "processes").glob("*.pdef"))
    out = tmp_path / "o"
    r = run(*map(str, files), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{f.stem}.yaml" for f in files)
    assert r.stdout.count(": ok (") == len(files)
