"""The Flask admin web UI (watch, launch, operate and trace): ``create_app``."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """``webui.app.create_app`` (imported on first use: importing ``webui``
    stays cheap for ``boss`` commands that do not serve it)."""
    from webui.app import create_app as factory

    return factory(*args, **kwargs)
