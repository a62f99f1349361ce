"""Section 7 of the process language, run as written (from the repository
root, as process authors run it)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.testing import ProcessHarness

ROOT = Path(__file__).resolve().parents[2]


def test_the_spec_example_runs_as_written(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    built = []

    def builder(wi) -> None:
        built.append(wi.params["project"])

    with ProcessHarness() as h:
        h.register("alpha", lambda wi: h.trace.append("alpha"))
        h.register("build_.*", builder)  # a regex registration
        run = h.launch(
            "processes/hello.yaml",  # a path, YAML text or a dict
            fields={"who": "world"},
        )
        run.wait(timeout=10)  # until it ends or stalls
        assert run.status == "finished"
        assert h.trace == ["hello world", "alpha"]  # echo lines and what participants appended
        assert run.fields["status"] == "SUCCESS"
    assert built == ["world"]
    assert os.getcwd() == str(ROOT)
