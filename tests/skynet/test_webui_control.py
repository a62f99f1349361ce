"""The web UI's participants page on a live SkyNET host: its REST API in
front of a real supervisord with real participant processes. An admin sees
the pool and its instances, scales and stops it; a normal user is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from tests.conftest import delete_keys
from tests.skynet.conftest import Host
from tests.skynet.test_api import _serving
from tests.waiting import wait_for
from tests.webui.conftest import csrf, make_env
from webui.settings import WebConfig


def test_the_web_ui_shows_and_controls_a_skynet_pool(
    make_host: Callable[..., Host], embedded_broker_url: str, redis_url: str, tmp_path: Path
) -> None:
    from skynet.api import create_app as skynet_app

    host = make_host(embedded_broker_url, host_name="build-1")
    host.install("alpha")
    assert host.states("alpha") == {"alpha@00": "RUNNING"}
    with _serving(skynet_app(host.config)) as url:
        web = WebConfig(secret_key="test-secret", skynet_urls=url, skynet_token="t0ken")
        (tmp_path / "web").mkdir()
        prefix = f"boss-test:{uuid.uuid4().hex}:"
        env = make_env(tmp_path / "web", redis_url, embedded_broker_url, prefix, web=web)
        try:
            admin = env.client("root")
            page = admin.get("/participants").get_data(as_text=True)
            assert "build-1" in page and "alpha" in page and "alpha@00" in page
            assert "RUNNING" in page

            def act(client, **form):
                return client.post(
                    "/participants/skynet",
                    data={"csrf_token": csrf(client), "url": url, "name": "alpha", **form},
                )

            # a normal user may look, not act
            alice = env.client("alice")
            refused = act(alice, action="stop")
            assert refused.status_code == 403
            assert "admin" in refused.get_data(as_text=True).lower()
            assert host.states("alpha") == {"alpha@00": "RUNNING"}
            # the admin scales the pool through SkyNET: the instance that was there stays
            before = host.pids("alpha")["alpha@00"]
            assert act(admin, action="scale", instances="2").status_code == 302
            wait_for(
                lambda: host.states("alpha") == {"alpha@00": "RUNNING", "alpha@01": "RUNNING"},
                30,
                "two RUNNING instances",
            )
            assert host.pids("alpha")["alpha@00"] == before
            assert act(admin, action="stop").status_code == 302
            wait_for(
                lambda: set(host.states("alpha").values()) == {"STOPPED"}, 30, "the pool stopped"
            )
            # and each action is in the audit log, with who did it
            audit = admin.get("/audit").get_data(as_text=True)
            assert "skynet scale" in audit and "skynet stop" in audit and "root" in audit
        finally:
            delete_keys(env.store.client, prefix)
            env.store.close()
