"""Redis/Valkey ACL users for the store: what each role may touch, as
``ACL SETUSER`` rules computed from the key prefix (``boss store users``,
``skynet install``; docs/security.md, *Store users*). Needs Redis or Valkey
7 (key permissions ``%R~``/``%RW~``).

Every key BOSS writes starts with ``[boss] key_prefix`` (``P`` below,
default ``boss:``). Who writes what, read from the code:

==================  =====================================================
keys                written by
==================  =====================================================
``P run:*``,        the engine (``engine.store.redis_store``: runs and
``P runs*``, ...    their indexes, definitions, timers, registrations,
                    listeners, mutexes, engine heartbeats, transitions)
``P logs:*``        the engine (step logs, ``engine.store.steplogs``)
``P g:*``           the engine (the traceability graph, ``engine.trace``)
``P trace:*``       the engine, ``boss triggers`` (``engine.trace.triggers``)
``P radar:*``       the engine, ``boss ci import`` (``engine.radar``)
``P reporters:*``   ``boss reporter`` and the ``report`` participant
                    (``engine.reporters.jobs``)
``P launchers:*``   the launchers (``engine.launchers``)
``P web:*``         the web UI (``webui``: users, sessions, the audit log,
                    log-in refusals and rate limits, the run index, the
                    health records)
``P obsticket:*``   the ``obsticket`` participant (its locks)
==================  =====================================================

The roles:

``engine``
    every key under the prefix, every command but the ``@admin`` and
    ``@dangerous`` ones, with ``INFO`` back (``boss doctor``, the embedded
    server's health); ``WAIT`` (replicated saves) is in neither category.
    ``FUNCTION`` and ``SCRIPT FLUSH|KILL`` are taken away (BOSS runs its Lua
    with ``EVALSHA``/``SCRIPT LOAD``, never as functions). No pub/sub
    channels. With ``broker=True`` (a Valkey that is also the broker, kombu's
    Redis transport: ``engine.redis_transport``), every key and channel:
    kombu names its keys after the queues (``<queue>``, ``_kombu.binding.*``,
    ``unacked``...), which are not under the prefix; and ``CLIENT LIST``,
    for the transport's sweep for the messages of killed consumers.
``web``
    reads every key under the prefix, writes only ``P web:*``; the same
    commands as the engine without ``INFO``. Its Lua that reads runs goes
    through ``EVALSHA_RO`` (``redis_store.call_readonly``): plain ``EVALSHA``
    asks for write access to the keys it is given.
``participant:<name>``
    one per standard participant that touches the store
    (``PARTICIPANT_KEYS``), its keys read-write and nothing else, and only
    the commands it sends (``PARTICIPANT_COMMANDS``, plus ``@connection``).
    A participant that is not listed there needs no store user at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit

__all__ = [
    "COMMANDS",
    "PARTICIPANT_COMMANDS",
    "PARTICIPANT_KEYS",
    "ROLES",
    "WEB_KEYS",
    "Role",
    "apply_role",
    "engine_rules",
    "glob_escape",
    "new_password",
    "participant_role",
    "participant_rules",
    "placeholder",
    "remove_user",
    "role",
    "roles",
    "setuser_args",
    "setuser_line",
    "store_roles",
    "strip_password",
    "url_with_user",
    "web_rules",
]

#: what every store user may run (engine and web): all but the admin and
#: dangerous commands, and no function or script flushing
COMMANDS = ("+@all", "-@admin", "-@dangerous", "-function", "-script|flush", "-script|kill")

#: the web UI's own keys (under the prefix): every key ``webui`` writes
#: (``webui.users``: ``web:users``, ``web:refusals``, ``web:audit``;
#: ``webui.sessions``: ``web:sess:*``, ``web:usess:*``; ``webui.app``:
#: ``web:limits*``; ``webui.runindex``: ``web:owner``, ``web:idx:*``...;
#: ``webui.health``: ``web:health:*``). tests/store/test_acl.py checks the
#: modules against it.
WEB_KEYS = ("web:*",)

#: the keys (under the prefix) of each standard participant that uses the
#: store: ``participants.standard.obsticket`` (``obsticket:<project>``) and
#: ``participants.standard.report`` (``engine.reporters.Jobs.add``: the job
#: hash and the due set). Checked against the modules by the tests.
PARTICIPANT_KEYS: Mapping[str, tuple[str, ...]] = {
    "obsticket": ("obsticket:*",),
    "report": ("reporters:job:*", "reporters:due"),
}

#: the commands each of them sends, those its Lua sends included (ACL
#: checks every command a script runs): ``obsticket`` GET, SET and its
#: release script (GET, DEL); ``report`` the jobs' ``_ADD`` script (EXISTS,
#: HSET, EXPIRE, ZADD) by EVALSHA, and SCRIPT LOAD when the server does not
#: know it yet (redis-py's ``Script``)
PARTICIPANT_COMMANDS: Mapping[str, tuple[str, ...]] = {
    "obsticket": ("+get", "+set", "+del", "+eval", "+evalsha"),
    "report": ("+evalsha", "+script|load", "+exists", "+hset", "+expire", "+zadd"),
}

#: the roles, in the order ``roles`` lists them
ROLES = ("engine", "web", *(f"participant:{n}" for n in PARTICIPANT_KEYS))


def glob_escape(text: str) -> str:
    """``text`` as a literal in an ACL key pattern (glob syntax)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _keys(prefix: str, patterns: Iterable[str], perm: str = "") -> list[str]:
    head = f"%{perm}~" if perm else "~"
    return [head + glob_escape(prefix) + p for p in patterns]


@dataclass(frozen=True)
class Role:
    """One ACL user: its role (``ROLES``), user name and rules (without
    the password and ``on``)."""

    name: str
    user: str
    rules: tuple[str, ...]

    @property
    def short(self) -> str:
        """``engine``, ``web``, or the participant's name."""
        return self.name.rpartition(":")[2]


def engine_rules(prefix: str, *, broker: bool = False) -> list[str]:
    """The engine's rules (see the module docstring)."""
    if broker:
        # ``CLIENT LIST``: the broker's sweep for the messages of consumers
        # that were killed reads which processes still have connections
        # (``engine.redis_transport``, ``QoS.restore_dead``)
        return ["allkeys", "allchannels", *COMMANDS, "+info", "+client|list"]
    keys = [*_keys(prefix, ["*"]), "resetchannels"]
    return [*keys, *COMMANDS, "+info"]


def web_rules(prefix: str) -> list[str]:
    """The web UI's rules: read everything under the prefix, write ``WEB_KEYS``."""
    return [
        *_keys(prefix, ["*"], "R"),
        *_keys(prefix, WEB_KEYS, "RW"),
        "resetchannels",
        *COMMANDS,
    ]


def participant_rules(prefix: str, *names: str) -> list[str]:
    """The rules of a user serving these standard participants
    (``PARTICIPANT_KEYS``: one, or several for a participant that does what
    several do); ValueError for one that does not use the store."""
    unknown = [n for n in names if n not in PARTICIPANT_KEYS]
    if unknown or not names:
        raise ValueError(
            f"unknown store role {', '.join(unknown) or '(none)'}: one of "
            f"{', '.join(PARTICIPANT_KEYS)} (a participant that is not listed "
            "does not use the store)"
        )
    keys = list(dict.fromkeys(k for n in names for k in PARTICIPANT_KEYS[n]))
    commands = list(dict.fromkeys(c for n in names for c in PARTICIPANT_COMMANDS[n]))
    return [
        *_keys(prefix, keys),
        "resetchannels",
        "-@all",
        "+@connection",  # AUTH, HELLO, PING, CLIENT SETNAME...
        "-@admin",
        "-@dangerous",  # ...but not CLIENT KILL or CLIENT LIST
        *commands,
    ]


def participant_role(prefix: str, user: str, names: Iterable[str]) -> Role:
    """A user ``user`` for a participant that uses the store as the standard
    participants ``names`` do (``skynet install``: ``store = obsticket``)."""
    names = list(dict.fromkeys(names))
    return Role(f"participant:{'+'.join(names)}", user, tuple(participant_rules(prefix, *names)))


def store_roles(declared: str) -> list[str]:
    """The roles a participant declares (``[participant] store``: names
    separated by commas or blanks; ``none``/``false``/empty: none);
    ValueError for an unknown one."""
    names = [n for n in declared.replace(",", " ").split() if n.lower() not in ("none", "false")]
    if names:
        participant_rules("", *names)  # checks them
    return list(dict.fromkeys(names))


def role(name: str, prefix: str, *, user_prefix: str = "boss-", broker: bool = False) -> Role:
    """The role ``name`` (``engine``, ``web``, ``participant:<name>`` or a
    standard participant's bare name); ValueError for an unknown one."""
    kind, _, part = name.partition(":")
    if not part and name in PARTICIPANT_KEYS:
        kind, part = "participant", name
    if kind == "engine" and not part:
        return Role("engine", f"{user_prefix}engine", tuple(engine_rules(prefix, broker=broker)))
    if kind == "web" and not part:
        return Role("web", f"{user_prefix}web", tuple(web_rules(prefix)))
    if kind == "participant" and part in PARTICIPANT_KEYS:
        return Role(
            f"participant:{part}",
            f"{user_prefix}participant-{part}",
            tuple(participant_rules(prefix, part)),
        )
    raise ValueError(
        f"unknown store role {name!r}: one of {', '.join(ROLES)} "
        "(a participant that is not listed does not use the store)"
    )


def roles(
    prefix: str,
    names: Iterable[str] | None = None,
    *,
    user_prefix: str = "boss-",
    broker: bool = False,
) -> list[Role]:
    """The roles ``names`` (default: all of ``ROLES``)."""
    return [
        role(n, prefix, user_prefix=user_prefix, broker=broker)
        for n in (ROLES if names is None else names)
    ]


def placeholder(r: Role) -> str:
    """What ``--print`` writes for a role's password."""
    return f"{r.short.upper().replace('-', '_')}_PASSWORD"


def setuser_args(r: Role, password: str) -> list[str]:
    """``ACL SETUSER``'s arguments: the user, made again from nothing
    (``reset``), on, with ``password`` and the role's rules."""
    return [r.user, "reset", "on", f">{password}", *r.rules]


def setuser_line(r: Role, password: str | None = None) -> str:
    """The ``ACL SETUSER`` line (``redis-cli`` syntax; the password a
    placeholder unless given)."""
    args = setuser_args(r, placeholder(r) if password is None else password)
    return "ACL SETUSER " + " ".join(_quoted(a) for a in args)


def _quoted(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\"'\\"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def new_password() -> str:
    """A random password (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def apply_role(client: Any, r: Role, password: str) -> None:
    """Create or replace the role's user on the server ``client`` talks to
    (an administrator's connection)."""
    client.execute_command("ACL", "SETUSER", *setuser_args(r, password))


def remove_user(client: Any, user: str) -> bool:
    """Delete an ACL user; False when there was none."""
    return int(client.execute_command("ACL", "DELUSER", user)) == 1


def strip_password(url: str) -> str:
    """``url`` without user or password (in the address or as
    ``?password=``/``?username=``)."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("password", "username")
    ]
    return _join(parts._replace(netloc=netloc, query=urlencode(query, safe="/")))


def url_with_user(url: str, user: str, password: str) -> str:
    """``url`` logging in as ``user`` with ``password`` instead of what it
    says (``redis://``, ``rediss://``, ``unix://``, the ``valkey`` schemes)."""
    bare = urlsplit(strip_password(url))
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    return _join(bare._replace(netloc=auth + bare.netloc))


def _join(parts: SplitResult) -> str:
    # urlunsplit drops an empty address: unix:///path would lose its //
    out = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if parts.query:
        out += "?" + parts.query
    if parts.fragment:
        out += "#" + parts.fragment
    return out
