"""``webui.errorgroups``: messages that differ only by what they name (a
number, an id, a run id, a quoted name, a path, host:port) share one
template; groups are by error class and template. The messages are the
kind participants raise (participants/standard, the compat participants,
the engine)."""

from __future__ import annotations

import pytest

from webui.errorgroups import group_errors, normalise, traceback_preview

SAME_CAUSE = [
    # participants/standard/obs_request.py, obs_client.py
    (
        "obs_request: no request id (params.id, req.id or ev.id) for request 12345",
        "obs_request: no request id (params.id, req.id or ev.id) for request 998",
    ),
    ("request 4242 failed (after 3 attempts)", "request 17 failed (after 5 attempts)"),
    # participants/standard/obsticket.py
    (
        "obsticket: action 'frob' is not get, try, require or release",
        "obsticket: action 'lock-it' is not get, try, require or release",
    ),
    # participants/standard/git_source.py
    ("no git command ('/usr/bin/git') on this host", "no git command ('git2') on this host"),
    # compat: Bugzilla, OBS
    ("Failed to get bug 1234", "Failed to get bug 98765"),
    (
        "getProjectRepositories(home:alice) failed: HTTP Error 404",
        "getProjectRepositories(home:alice) failed: HTTP Error 503",
    ),
    (
        "Path '/srv/obs/build/one' does not exist or not writable",
        "Path '/tmp/x' does not exist or not writable",
    ),
    # the engine and its brokers
    ("run 20261121-abcd1234ef01 has no error", "run 20250101-0123456789ab has no error"),
    (
        "event 8e3a4e0c-1111-4222-8333-444455556666 is unknown",
        "event 0b9d2f3e-aaaa-4bbb-8ccc-ddddeeeeffff is unknown",
    ),
    ("connection refused to build-1.example.com:8443", "connection refused to 10.0.0.7:22"),
    ("Connection refused: 127.0.0.1:5672", "Connection refused: localhost:6379"),
    (
        "cannot open /var/lib/boss/runs/20261121-abcd1234ef01.json",
        "cannot open /var/lib/boss/runs/20261122-ffff1234ef01.json",
    ),
    (
        "commit 3f2a9c1d not found in https://git.example.com/kernel.git",
        "commit 0a1b2c3d4e5f6789 not found in https://git.example.com/glibc.git",
    ),
    ("timed out after 30.5 s", "timed out after 120 s"),
    ("mail to bob@example.com failed: 550", "mail to ci@example.org failed: 451"),
    ("digest 0xdeadbeef does not match", "digest 0x1234 does not match"),
    ('template header line "Subject x" is not', 'template header line "To" is not'),
]

DIFFERENT = [
    ("the build host is down", "disk full"),
    ("notify: no recipient (params.mail_to)", "Missing mandatory field or param 'subject'"),
    ("obsticket was not started", "notify_irc was not started (no lifecycle start)"),
]


@pytest.mark.parametrize(("a", "b"), SAME_CAUSE)
def test_one_cause_one_template(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_causes_stay_apart(a: str, b: str) -> None:
    assert normalise(a) != normalise(b)


def test_placeholders_and_what_is_kept() -> None:
    assert normalise("request 12345 failed (after 3 attempts)") == (
        "request <n> failed (after <n> attempts)"
    )
    assert normalise("run 20261121-abcd1234ef01:0_1 failed") == "run <wfid> failed"
    assert normalise("cannot open /var/lib/x.json") == "cannot open <path>"
    assert normalise("to db.example.com:5432 now") == "to <host:port> now"
    assert normalise("event 8e3a4e0c-1111-4222-8333-444455556666") == "event <uuid>"
    assert normalise("action 'x' bad") == "action '<str>' bad"
    # words, versions and single slashes are not ids
    assert normalise("the build host is down") == "the build host is down"
    assert normalise("python3 v1.2.3 and a/b") == "python3 v1.2.3 and a/b"
    assert normalise("facade deadbee1") == "facade <hex>"  # letters and digits: an id
    assert normalise("facade") == "facade"
    # the first line counts, whitespace is folded, empty stays empty
    assert normalise("Bad response from x:\n<html>500</html>") == "Bad response from x:"
    assert normalise("  a   b \t c ") == "a b c"
    assert normalise("") == ""
    assert len(normalise("x" * 1000)) == 300


def test_traceback_preview() -> None:
    assert traceback_preview(None) is None
    tb = "\n".join(
        ["Traceback (most recent call last):"]
        + [f'  File "/srv/p.py", line {n}, in f{n}' for n in range(10)]
        + ["ValueError: no params.repo"]
    )
    p = traceback_preview(tb)
    assert p is not None
    assert p["head"][0].startswith("Traceback") and p["tail"][-1] == "ValueError: no params.repo"
    assert p["omitted"] == 12 - 5 and p["full"] == tb
    short = traceback_preview("ValueError: x")
    assert short is not None and short["head"] == ["ValueError: x"] and short["omitted"] == 0


def _err(n: int, message: str, cls: str = "RuntimeError", **extra: str) -> dict[str, str]:
    return {
        "id": f"20261121-{n:012x}:0_0:3",
        "wfid": f"20261121-{n:012x}",
        "class": cls,
        "message": message,
        "expid": "0_0",
        "participant": extra.get("participant", "builder"),
        "at": f"2026-11-21T10:{n:02d}:00Z",
        **{k: v for k, v in extra.items() if k != "participant"},
    }


def test_group_errors() -> None:
    errors = [_err(n, f"cannot build pkg-{n}: exit status {n}") for n in range(10)]
    errors[3]["participant"] = "builder2"
    errors[7]["traceback"] = "Traceback (most recent call last):\n  ...\nRuntimeError: boom"
    errors.append(_err(20, "cannot build pkg-1: exit status 1", cls="BuildError"))
    errors.append(_err(21, "disk full", participant="alpha"))
    names = {e["wfid"]: ("build" if i % 2 else "release") for i, e in enumerate(errors)}
    groups = group_errors(errors, process_of=names.get)
    assert [g["count"] for g in groups] == [10, 1, 1]
    g = groups[0]
    assert g["cls"] == "RuntimeError"
    assert g["template"] == "cannot build pkg-<n>: exit status <n>"
    assert g["message"] == "RuntimeError: cannot build pkg-<n>: exit status <n>"
    assert len(g["examples"]) == 3 and g["examples"][0] == "cannot build pkg-0: exit status 0"
    assert g["newest"] == "2026-11-21T10:09:00Z"
    assert sorted(g["participants"]) == ["builder", "builder2"]
    assert sorted(g["processes"]) == ["build", "release"]
    assert g["traceback"] is not None and g["traceback"]["full"].endswith("RuntimeError: boom")
    assert g["errors"][0]["at"] == "2026-11-21T10:09:00Z"  # newest first
    assert {e["error_id"] for e in g["errors"]} == {e["id"] for e in errors[:10]}
    # the same text with another class is another cause; keys are stable
    assert groups[1]["cls"] == "BuildError" or groups[2]["cls"] == "BuildError"
    again = group_errors(errors)
    assert [x["key"] for x in again] == [x["key"] for x in groups]
    assert len({x["key"] for x in groups}) == 3
    assert group_errors([]) == []
