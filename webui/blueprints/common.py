"""What the ``pages`` and ``api`` blueprints share.

The same operation is offered twice, as an HTML form and as JSON: the
blueprints only read their arguments and render the answer, the operation
itself is written once here, so both audit and refuse alike.
"""

from __future__ import annotations

from typing import Any

from flask import request

from webui.access import Refused, User
from webui.health import parse_since
from webui.services import Services


def remote() -> str:
    """The client's address, for the audit log."""
    return request.remote_addr or ""


def since_arg(default_days: int = 7) -> int:
    """The request's ``?since=`` (else ``default_days``); a bad one is a 400."""
    try:
        return parse_since(request.args.get("since"), default_days)
    except ValueError as exc:
        raise Refused(str(exc), 400) from None


def skynet_action(
    svc: Services, user: User, action: str, url: str, name: str, instances: Any
) -> Any:
    """Send ``action`` (start, stop or scale to ``instances``) for the
    program ``name`` to the SkyNET at ``url`` and audit it, as done or as
    failed; the SkyNET's answer is returned. A bad action or count, or a
    SkyNET that refuses or does not answer, is :class:`Refused`."""
    from webui.skynet_client import SkynetError

    try:
        if action in ("start", "stop"):
            result = svc.skynet.set_running(url, name, action == "start")
        elif action == "scale":
            try:
                count = int(instances)
            except ValueError:
                raise Refused("scale needs instances (a number)", 400) from None
            result = svc.skynet.scale(url, name, count)
        else:
            raise Refused(f"unknown action {action!r}: start, stop or scale", 400)
    except SkynetError as exc:
        svc.audit.record(
            user, f"skynet {action}", f"{name}@{url}", ok=False, detail=str(exc), remote=remote()
        )
        raise Refused(str(exc), exc.status if exc.status >= 400 else 502) from None
    svc.audit.record(
        user, f"skynet {action}", f"{name}@{url}", detail=str(instances), remote=remote()
    )
    return result
