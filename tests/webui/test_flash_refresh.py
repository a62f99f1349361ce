"""A page's own refresh of its live regions leaves the flash messages alone.

The errors page refreshes its regions in place on every transition
(``boss.js``: ``liveRegions``, a ``fetch`` of the page). A bulk replay posts
the form and is redirected back to the page with one message per run; the
replays make transitions at once, and a refresh fetched by the old page
could reach the server before the redirect's ``GET`` and take the messages
with it: the operator saw none (``tests/webui/test_browser_errors.py``
caught it in the suite). The refresh says what it is (``X-Boss-Refresh``)
and gets no messages; the page shown next gets them."""

from __future__ import annotations

from tests.webui.conftest import WebEnv, csrf


def test_a_refresh_does_not_take_the_messages_of_the_next_page(web: WebEnv) -> None:
    wfid = web.launch_as("alice")
    alice = web.client("alice")
    r = alice.post(f"/runs/{wfid}/cancel", data={"csrf_token": csrf(alice)})
    assert r.status_code == 302, r.data
    refresh = alice.get("/errors", headers={"X-Boss-Refresh": "1"})
    assert refresh.status_code == 200
    assert b'class="flash ok"' not in refresh.data
    shown = alice.get(r.headers["Location"])
    assert shown.status_code == 200
    assert b'class="flash ok"' in shown.data, shown.data[:2000]
    # shown once: a second look has none
    assert b'class="flash ok"' not in alice.get(r.headers["Location"]).data


def test_boss_js_marks_its_refreshes() -> None:
    from pathlib import Path

    js = (Path(__file__).resolve().parents[2] / "webui" / "static" / "boss.js").read_text()
    assert '"X-Boss-Refresh": "1"' in js


def test_a_refresh_that_left_before_the_form_s_answer_does_not_put_the_old_cookie_back(
    web: WebEnv,
) -> None:
    """The sessions are signed cookies, permanent and sliding. A refresh the
    old page sent before the form's answer came (with the cookie of
    before) and that came back after it used to send that cookie back: the
    browser then held the session of before, and the page the form was
    redirected to showed no messages (``test_browser_errors`` in the suite,
    once the engine replayed fast enough). A refresh that changed nothing
    sends no cookie; a page the visitor opens still slides the session."""
    wfid = web.launch_as("alice")
    alice = web.client("alice")
    before = alice.get_cookie("boss_session")
    assert before is not None
    r = alice.post(f"/runs/{wfid}/cancel", data={"csrf_token": csrf(alice)})
    assert r.status_code == 302, r.data
    after = alice.get_cookie("boss_session")
    assert after is not None and after.value != before.value  # the messages are in it
    # the refresh in flight: the cookie of before
    late = web.app.test_client()
    late.set_cookie("boss_session", before.value)
    refresh = late.get("/errors", headers={"X-Boss-Refresh": "1"})
    assert refresh.status_code == 200
    assert not [h for h in refresh.headers.getlist("Set-Cookie") if "boss_session" in h]
    shown = alice.get(r.headers["Location"])
    assert b'class="flash ok"' in shown.data, shown.data[:2000]
    page = alice.get("/errors")
    assert [h for h in page.headers.getlist("Set-Cookie") if "boss_session" in h]
