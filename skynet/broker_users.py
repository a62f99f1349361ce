"""A RabbitMQ user per participant queue, allowed only what a participant
does (``docs/security.md``, *Participants that cannot impersonate each
other*).

``skynet install`` (with ``[boss] participant_users = true``) and ``boss
register --broker-user`` make the user ``boss.participant.<queue>`` with a
random password and these permissions in the vhost of ``broker_url``
(RabbitMQ matches each regular expression against the name of the queue or
exchange an operation touches):

* configure (declare, delete): its queue, its instances' exclusive control
  queues (``<control_exchange>.<queue>.<instance>``), and the shared
  resources the participant runtime declares: the dead-letter queue, the
  step-log queue, the control and event exchanges, the trace queue;
* write (publish, bind to): the default exchange (``amq.default``: replies
  to the engine's queue, step logs, dead letters), its control queues (to
  bind them), the event exchange and the trace queue;
* read (consume, bind from): its queue, its control queues, and the
  control and event exchanges (to bind to them).

It cannot consume, purge or delete another participant's queue, nor the
engine's. The default exchange cannot restrict the routing key: it can
publish a message to any queue, the engine's included; the dispatch token
(``engine.tokens``) is what keeps a forged reply from reaching a run.

Two ways to make them (``[boss] broker_admin``): ``rabbitmqctl`` on the
broker's host (the password goes through its standard input, never on a
command line), or the management API's URL with an administrator's
credentials (``http://admin:secret@rabbit:15672``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from engine.config import Config
from skynet.errors import Invalid, SkynetError

__all__ = [
    "PREFIX",
    "BrokerAdmin",
    "ManagementAPI",
    "ParticipantUser",
    "Permissions",
    "Rabbitmqctl",
    "admin_for",
    "create_participant_user",
    "participant_url",
    "permissions",
    "remove_participant_user",
    "user_name",
    "user_of_url",
    "vhost_of",
]

#: the name of a participant queue's broker user: ``boss.participant.<queue>``
PREFIX = "boss.participant."


class BrokerUserError(SkynetError):
    """The broker refused to create or remove a user (or cannot be reached)."""


@dataclass(frozen=True, slots=True)
class Permissions:
    """RabbitMQ's three regular expressions of a user in a vhost."""

    configure: str
    write: str
    read: str


@dataclass(frozen=True, slots=True)
class ParticipantUser:
    user: str
    password: str
    #: ``broker_url`` with this user's credentials
    url: str


def user_name(queue: str) -> str:
    return PREFIX + queue


def permissions(config: Config, queue: str) -> Permissions:
    """What the user of ``queue`` may do (see the module docstring)."""
    q = re.escape(queue)
    control = re.escape(config.control_exchange)
    control_queues = rf"{control}\.{q}\..+"
    events = re.escape(config.event_exchange)
    trace = re.escape(config.trace_queue)
    shared = "|".join(re.escape(name) for name in (config.deadletter_queue, config.step_log_queue))
    return Permissions(
        configure=rf"^({q}|{control_queues}|{control}|{events}|{trace}|{shared})$",
        write=rf"^(amq\.default|{control_queues}|{events}|{trace})$",
        read=rf"^({q}|{control_queues}|{control}|{events})$",
    )


def vhost_of(broker_url: str) -> str:
    """The vhost of an ``amqp://`` URL (``/`` when it names none)."""
    path = urlsplit(broker_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def participant_url(broker_url: str, user: str, password: str) -> str:
    """``broker_url`` with ``user`` and ``password`` in place of its own."""
    parts = urlsplit(broker_url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def user_of_url(url: str) -> str | None:
    parts = urlsplit(url)
    return unquote(parts.username) if parts.username else None


class BrokerAdmin(Protocol):
    def put_user(self, user: str, password: str) -> None: ...
    def set_permissions(self, vhost: str, user: str, perms: Permissions) -> None: ...
    def delete_user(self, user: str) -> bool: ...
    def user_exists(self, user: str) -> bool: ...


class Rabbitmqctl:
    """``rabbitmqctl`` on this host (it must reach the node: run as root or
    rabbitmq, or with the node's Erlang cookie)."""

    def __init__(self, program: str = "rabbitmqctl") -> None:
        found = shutil.which(program)
        if found is None:
            raise Invalid(
                f"broker_admin = {program}: not found here; run on the broker's host, or "
                "set broker_admin to the management API's URL"
            )
        self.program = found

    def _run(
        self, *args: str, stdin: str | None = None, ok: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.program, "-q", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 and not any(x in proc.stderr + proc.stdout for x in ok):
            detail = " ".join((proc.stderr or proc.stdout).split())
            raise BrokerUserError(f"rabbitmqctl {args[0]}: {detail}")
        return proc

    def user_exists(self, user: str) -> bool:
        out = self._run("list_users", "--no-table-headers").stdout
        return any(line.split("\t", 1)[0] == user for line in out.splitlines())

    def put_user(self, user: str, password: str) -> None:
        if self.user_exists(user):
            self._run("delete_user", user, ok=("does not exist", "no_such_user"))
        # no password argument: rabbitmqctl reads it from standard input
        self._run("add_user", user, stdin=password + "\n")

    def set_permissions(self, vhost: str, user: str, perms: Permissions) -> None:
        self._run("set_permissions", "-p", vhost, user, perms.configure, perms.write, perms.read)

    def delete_user(self, user: str) -> bool:
        proc = self._run("delete_user", user, ok=("does not exist", "no_such_user"))
        return proc.returncode == 0


class ManagementAPI:
    """RabbitMQ's management HTTP API (``rabbitmq_management``) at ``url``
    (``http[s]://admin:secret@host:15672``)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if not parts.username:
            raise Invalid("broker_admin: the management API's URL needs an administrator's user")
        self.base = urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", "")
        )
        creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        self.auth = "Basic " + base64.b64encode(creds.encode()).decode()
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> int:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/api/{path}", data=data, method=method)
        req.add_header("Authorization", self.auth)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method in ("GET", "DELETE"):
                return 404
            text = exc.read().decode(errors="replace")[:200]
            raise BrokerUserError(
                f"management API {method} /api/{path}: {exc.code} {text}"
            ) from None
        except OSError as exc:
            raise BrokerUserError(f"management API at {self.base}: {exc}") from None

    def user_exists(self, user: str) -> bool:
        return self._call("GET", f"users/{quote(user, safe='')}") != 404

    def put_user(self, user: str, password: str) -> None:
        self._call("PUT", f"users/{quote(user, safe='')}", {"password": password, "tags": ""})

    def set_permissions(self, vhost: str, user: str, perms: Permissions) -> None:
        self._call(
            "PUT",
            f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
            {"configure": perms.configure, "write": perms.write, "read": perms.read},
        )

    def delete_user(self, user: str) -> bool:
        return self._call("DELETE", f"users/{quote(user, safe='')}") != 404


def admin_for(config: Config) -> BrokerAdmin:
    """How ``config`` says to administer the broker (``broker_admin``)."""
    how = config.broker_admin.strip() or "rabbitmqctl"
    if how.startswith(("http://", "https://")):
        return ManagementAPI(how)
    return Rabbitmqctl(how)


def _check_rabbitmq(config: Config) -> str:
    url = config.broker_url
    if not url.startswith(("amqp://", "amqps://")):
        raise Invalid(
            "participant_users: broker users are RabbitMQ's; broker_url is not an amqp:// URL"
        )
    return url


def create_participant_user(
    config: Config, queue: str, admin: BrokerAdmin | None = None
) -> ParticipantUser:
    """Create (or renew, with a new password) the user of ``queue`` with
    ``permissions`` in the vhost of ``broker_url``."""
    url = _check_rabbitmq(config)
    admin = admin or admin_for(config)
    user, password = user_name(queue), secrets.token_urlsafe(24)
    admin.put_user(user, password)
    try:
        admin.set_permissions(vhost_of(url), user, permissions(config, queue))
    except BaseException:
        admin.delete_user(user)
        raise
    return ParticipantUser(user, password, participant_url(url, user, password))


def remove_participant_user(config: Config, queue: str, admin: BrokerAdmin | None = None) -> bool:
    """Remove the user of ``queue``; whether there was one."""
    _check_rabbitmq(config)
    return (admin or admin_for(config)).delete_user(user_name(queue))
