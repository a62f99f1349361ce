"""``RuoteAMQP.launcher.Launcher``: launch a process, as python-ruote-amqp's.

``Launcher(amqp_host, amqp_user, amqp_pass, amqp_vhost)`` takes BOSS's old
AMQP settings and turns them into a broker URL
(``amqp://user:pass@host:5672/vhost``, as the ``[amqp]`` section of a
participant's INI file is read); ``launch(process, fields, variables)``
publishes a launch item (``engine.core.messages.launch_item``) to the
engine's queue, persistent, through BOSS's broker publisher, exactly as
``boss launch`` does.

Supported: the constructor's four settings (``broker_url=`` or ``config=``
instead, for BOSS's own broker names, the embedded Valkey included), and
``launch``'s ``process`` (the definition's text), ``fields`` and
``variables`` with the same ``TypeError`` checks. ``launch`` also takes
``wfid`` and returns the run's id (it sets one, so a launch published again
after a broker error is recognised as the same launch). The connection is
opened on the first launch, not in the constructor.

Not supported: ``conn=`` (a pika connection), and the ``ruote_workitems``
queue (the engine's queue, ``[boss] engine_queue``, is used). The definition
must be one BOSS's engine reads (see ``docs/process-definitions.md``).
"""

from __future__ import annotations

from typing import Any

from engine.config import Config, amqp_section_url
from engine.core import messages
from engine.engine import new_wfid

__all__ = ["Launcher"]


class Launcher:
    """Launches processes on BOSS's engine."""

    def __init__(
        self,
        amqp_host: str = "localhost",
        amqp_user: str = "boss",
        amqp_pass: str = "boss",
        amqp_vhost: str = "boss",
        conn: Any = None,
        *,
        broker_url: str | None = None,
        config: Config | None = None,
        publisher: Any = None,
    ) -> None:
        if conn is not None:
            raise TypeError("Launcher(conn=...) is not supported: give the broker's settings")
        self.host = amqp_host
        self.user = amqp_user
        self.pw = amqp_pass
        self.vhost = amqp_vhost
        if broker_url is None and config is None:
            broker_url = amqp_section_url(
                {"host": amqp_host, "user": amqp_user, "pwd": amqp_pass, "vhost": amqp_vhost}
            )
        if config is None:
            config = Config.load(broker_url=broker_url)
        elif broker_url is not None:
            config = config.replace(broker_url=broker_url)
        self.config = config
        #: what publishes (``engine.broker.Publisher``, made on first use)
        self.publisher = publisher

    @property
    def broker_url(self) -> str:
        return self.config.broker_url

    def launch(
        self,
        process: str,
        fields: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        *,
        wfid: str | None = None,
    ) -> str:
        """Launch the process definition ``process`` with ``fields`` and
        ``variables``; returns the run's id."""
        if fields and not isinstance(fields, dict):
            raise TypeError("fields should be type dict")
        if variables and not isinstance(variables, dict):
            raise TypeError("variables should be type dict")
        wfid = wfid or new_wfid()
        item = messages.launch_item(
            definition=process, fields=fields or {}, variables=variables or {}, wfid=wfid
        )
        if self.publisher is None:
            from engine.broker import Publisher

            self.publisher = Publisher(self.config)
        self.publisher.send(item)
        return wfid

    def close(self) -> None:
        if self.publisher is not None and hasattr(self.publisher, "close"):
            self.publisher.close()
        self.publisher = None
