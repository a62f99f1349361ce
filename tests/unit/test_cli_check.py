"""``boss check``: load definition files and report their problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bossapp.cli import main

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: hello
subprocesses:
  notify: [irc]
steps:
  - echo: hello
  - if: {test: "${f:ok}", then: [a], else: [notify]}
"""
BAD = """\
name: handle_sr
steps:
  - concurence: [a]
  - wait: 5x
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in (("good.yaml", GOOD), ("bad.yaml", BAD)):
        path = tmp_path / name
        path.write_text(text)
        out[name] = str(path)
    return out


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_check_ok(files):
    result = run("check", files["good.yaml"])
    assert result.exit_code == 0, result.output
    # echo, if, a, notify, and irc in the subprocess
    assert result.stdout == f"{files['good.yaml']}: ok (hello, 5 steps)\n"
    assert result.stderr == ""


def test_check_problems_go_to_stderr_and_exit_1(files):
    result = run("check", files["bad.yaml"])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"{files['bad.yaml']}:3:5: 'concurence' is not an expression or participant attribute; "
        "did you mean 'concurrence'?"
    )
    assert lines[1].startswith(f"{files['bad.yaml']}:4:11: 'wait': invalid duration '5x'")
    assert len(lines) == 2


def test_check_several_files(files):
    result = run("check", files["good.yaml"], files["bad.yaml"])
    assert result.exit_code == 1
    assert "good.yaml: ok (hello" in result.stdout
    assert "bad.yaml:3:5:" in result.stderr


def test_check_missing_file_exits_2(files, tmp_path):
    result = run("check", files["good.yaml"], str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_check_needs_a_file():
    assert run("check").exit_code == 2


def test_check_json(files):
    result = run("check", "--json", files["good.yaml"], files["bad.yaml"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report[0] == {"file": files["good.yaml"], "ok": True, "problems": []}
    assert report[1]["file"] == files["bad.yaml"]
    assert report[1]["ok"] is False
    assert [(p["line"], p["col"]) for p in report[1]["problems"]] == [(3, 5), (4, 11)]
    assert "did you mean 'concurrence'?" in report[1]["problems"][0]["message"]


def test_check_json_all_ok(files):
    result = run("check", "--json", files["good.yaml"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [{"file": files["good.yaml"], "ok": True, "problems": []}]


def test_check_yaml_syntax_error(tmp_path):
    path = tmp_path / "tabs.yaml"
    path.write_text("name: t\nsteps:\n\t- a\n")
    result = run("check", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3:1: found character '\\t'")


def test_check_undecodable_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\nsteps: []\n")
    result = run("check", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:0:0: cannot read")


def test_python_m_engine_cli(files):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "bossapp.cli", "check", files["good.yaml"], files["bad.yaml"]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == f"{files['good.yaml']}: ok (hello, 5 steps)\n"
    assert f"{files['bad.yaml']}:3:5:" in proc.stderr
