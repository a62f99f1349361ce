"""What ``skynet install`` writes as a participant's ``redis_url``
(``skynet.store_users``): no password for a participant that declares no
store use; its own ACL user, with only its keys, for one that declares it
when the host has ``redis_admin_url`` (on the machine's real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from engine.store import acl
from skynet import programs
from skynet.config import SkynetConfig
from skynet.pools import Pools
from tests.skynet.conftest import HANDLERS, Host

pytestmark = pytest.mark.redis


@pytest.fixture
def admin(machine_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(machine_redis_url)
    version = str(client.info("server").get("redis_version", "0"))
    if int(version.split(".")[0]) < 7:
        client.close()
        pytest.skip(f"Redis {version}: ACL key permissions (%R~) need Redis/Valkey 7")
    yield client
    client.close()


def _pools(host: Host, host_name: str = "", **boss: str) -> Pools:
    """A ``Pools`` on ``host``'s supervisord with other ``[boss]`` keys."""
    ini = host.tmp / "store-users.ini"
    text = host.ini.read_text()
    head, sep, rest = text.partition("\n[skynet]\n")
    lines = [ln for ln in head.splitlines() if ln.split(" = ")[0] not in boss]
    lines += [f"{k} = {v}" for k, v in boss.items()]
    if host_name:
        rest += f"host_name = {host_name}\n"
    ini.write_text("\n".join(lines) + "\n" + sep + rest)
    return Pools(SkynetConfig.load(ini, environ={}))


def test_a_storeless_participant_gets_no_password(host: Host) -> None:
    pools = _pools(host, redis_url="redis://:s3cret@store.example:6379/0")
    spec = pools.install(HANDLERS, "plain", queue=host.queue("plain"), apply=False)
    text = programs.render(spec)
    assert "s3cret" not in text
    assert programs.parse(spec.path).boss["redis_url"] == "redis://store.example:6379/0"
    # one that declares the store, with no admin URL: the host's, as before
    spec = pools.install(
        HANDLERS, "locks", queue=host.queue("locks"), options={"store": "obsticket"}, apply=False
    )
    assert programs.parse(spec.path).boss["redis_url"] == "redis://:s3cret@store.example:6379/0"
    with pytest.raises(Exception, match="unknown store role"):
        pools.install(HANDLERS, "bad", options={"store": "everything"}, apply=False)


def test_a_participant_that_needs_the_store_gets_its_own_user(
    host: Host, admin: redis.Redis, machine_redis_url: str
) -> None:
    host_name = f"t{uuid.uuid4().hex[:8]}"
    pools = _pools(
        host, redis_url=machine_redis_url, redis_admin_url=machine_redis_url, host_name=host_name
    )
    user = f"boss-skynet-{host_name}-locks"
    try:
        spec = pools.install(
            HANDLERS,
            "locks",
            queue=host.queue("locks"),
            options={"store": "obsticket"},
            apply=False,
        )
        url = programs.parse(spec.path).boss["redis_url"]
        assert acl.strip_password(url) == acl.strip_password(machine_redis_url)
        assert url.startswith(f"redis://{user}:")
        assert "redis_admin_url" not in programs.parse(spec.path).boss
        client = redis.Redis.from_url(url)
        try:
            prefix = pools.config.boss.key_prefix
            assert client.set(f"{prefix}obsticket:home:x", "1")
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.hget(f"{prefix}run:w", "state")
        finally:
            client.close()
        admin.delete(f"{pools.config.boss.key_prefix}obsticket:home:x")
        # rebuild keeps it; uninstall removes it
        pools.rebuild(["locks"])
        assert programs.parse(spec.path).boss["redis_url"] == url
        pools.uninstall("locks")
        assert admin.execute_command("ACL", "GETUSER", user) is None
    finally:
        if admin.execute_command("ACL", "GETUSER", user) is not None:
            admin.execute_command("ACL", "DELUSER", user)
