"""The handler contract (as BOSS's SkyNET Exo) and how a handler is loaded.

A handler is any class with::

    def handle_wi(self, wi): ...                    # required: do the step
    def handle_lifecycle_control(self, ctrl): ...   # optional: start/stop/die
    def handle_cancel(self, wi): ...                # optional: the step was cancelled
    def handle_wi_control(self, ctrl): ...          # SkyNET's spelling of the cancel:
                                                    # ctrl.message == "cancel"

``Participant`` is a small base class with the optional two already
written; subclassing it is a convenience, not a requirement, so handlers
ported from SkyNET (plain ``ParticipantHandler(object)`` classes) load as
they are. The checks here run at start-up, so a wrong class name or
signature stops the participant with a clear message instead of failing on
its first workitem hours later.
"""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import inspect
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from participants.config import ParticipantConfigError
from participants.workitem import Workitem

__all__ = ["LifecycleControl", "Participant", "check_handler", "load_handler"]


@dataclass(frozen=True)
class LifecycleControl:
    """What ``handle_lifecycle_control`` receives.

    ``message`` is ``"start"`` (``config`` is the ConfigParser of the whole
    INI file), ``"stop"`` (a graceful stop: the workitem in hand has been
    replied) or ``"die"`` (the runtime gives up; ``reason`` says why).
    """

    message: str
    config: configparser.ConfigParser | None = None
    reason: str | None = None

    # SkyNET's WorkItemCtrl spelling, which BOSS handlers test
    def start(self) -> bool:
        return self.message == "start"

    def stop(self) -> bool:
        return self.message == "stop"

    def die(self) -> bool:
        return self.message == "die"


class Participant:
    """An optional base class for handlers.

    It keeps the INI file given at start as ``self.config`` (so
    ``self.config["mysection"]["key"]`` reads the participant's own
    settings) and ignores cancels. Subclasses write ``handle_wi``.

    The runtime gives every handler (this class or not) what SkyNET's Exo
    gave it: ``self.log``, a logger named for the participant, and
    ``self.send_to_engine(wi)``, which replies a workitem held earlier
    (``wi.forget = True``) from any thread.
    """

    config: configparser.ConfigParser | None = None
    log: logging.Logger

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        """Keep the configuration on "start"; override to do more."""
        if ctrl.message == "start":
            self.config = ctrl.config

    def handle_cancel(self, wi: Workitem) -> None:
        """Called from the runtime's thread when the step is cancelled while
        ``handle_wi`` runs. ``wi.cancelled`` is already true; override to
        stop the work (kill a build, ...)."""


_METHODS = {
    "handle_wi": True,
    "handle_lifecycle_control": False,
    "handle_cancel": False,
}


def check_handler(obj: Any, where: str) -> None:
    """Raise ``ParticipantConfigError`` unless ``obj`` (a class or an
    instance) has ``handle_wi(self, wi)`` and, if present, the optional
    methods with the same one-argument shape."""
    cls = obj if inspect.isclass(obj) else type(obj)
    label = cls.__name__
    for method, required in _METHODS.items():
        fn = inspect.getattr_static(cls, method, None)
        if fn is None:
            if required:
                raise ParticipantConfigError(f"{where}: {label} has no {method}(self, wi) method")
            continue
        if isinstance(fn, staticmethod | classmethod) or not callable(fn):
            raise ParticipantConfigError(
                f"{where}: {label}.{method} must be a plain method {method}(self, arg)"
            )
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin or C method: trust it
            continue
        try:
            signature.bind(None, None)
        except TypeError:
            arg = "ctrl" if method == "handle_lifecycle_control" else "wi"
            raise ParticipantConfigError(
                f"{where}: {label}.{method} must take (self, {arg}); it takes {signature}"
            )


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _load_module(code: str, where: str) -> Any:
    if code.endswith(".py") or "/" in code:
        path = Path(code)
        if not path.is_file():
            raise ParticipantConfigError(f"{where}: code = {code}: no such file")
        safe = re.sub(r"\W", "_", path.stem)
        module_name = f"boss_participant_{safe}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ParticipantConfigError(f"{where}: code = {code}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        # a handler may import modules next to it, as SkyNET let it
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise ParticipantConfigError(f"{where}: code = {code}: cannot load: {_one_line(exc)}")
        return module
    try:
        return importlib.import_module(code)
    except ModuleNotFoundError as exc:
        if exc.name and code.startswith(exc.name):
            raise ParticipantConfigError(f"{where}: code = {code}: no such file or module")
        raise ParticipantConfigError(f"{where}: code = {code}: cannot load: {_one_line(exc)}")
    except Exception as exc:
        raise ParticipantConfigError(f"{where}: code = {code}: cannot load: {_one_line(exc)}")


def load_handler(code: str, class_name: str, where: str) -> Any:
    """Import ``code``, check ``class_name`` in it and return an instance.

    ``where`` prefixes every error (``"echo.ini: [participant]"``).
    """
    module = _load_module(code, where)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ParticipantConfigError(f"{where}: class = {class_name}: {code} has no such class")
    if not inspect.isclass(cls):
        raise ParticipantConfigError(f"{where}: class = {class_name}: in {code} it is not a class")
    check_handler(cls, f"{where} class = {class_name}")
    try:
        return cls()
    except Exception as exc:
        raise ParticipantConfigError(
            f"{where}: class = {class_name}: {class_name}() failed: {_one_line(exc)}"
        )
