"""Checks made before anything is written: the name, the code file and its
handler class, the run-as user. Each failure is an ``Invalid`` with a
one-line message; ``install`` writes nothing unless all pass.

The handler is checked by importing the code file in a subprocess (with the
interpreter the instances will use), with ``participants.handler``'s own
``check_handler``: the same verdict the runtime would reach at start-up,
without running the code inside skynet or the REST API.
"""

from __future__ import annotations

import ast
import json
import os
import pwd
import subprocess
from pathlib import Path

from skynet.errors import Invalid
from skynet.programs import NAME_RE

__all__ = ["check_code", "check_name", "check_user", "describe"]

_CHECK = r"""
import importlib.util, inspect, json, sys
path, cls_name = sys.argv[1], sys.argv[2]
sys.path.insert(0, __import__("os").path.dirname(path))
def out(**kw):
    sys.stdout.write("\nSKYNET-CHECK " + json.dumps(kw) + "\n")
    sys.stdout.flush()
try:
    from participants.handler import check_handler
    from participants.config import ParticipantConfigError
except Exception as exc:
    out(error=f"cannot import the participant runtime ({type(exc).__name__}: {exc}): "
              "is boss installed for this interpreter?")
    sys.exit(0)
try:
    spec = importlib.util.spec_from_file_location("skynet_checked_participant", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
except SystemExit as exc:
    out(error=f"importing it exits the interpreter (SystemExit {exc.code!r})")
    sys.exit(0)
except BaseException as exc:
    out(error="cannot import it: " + type(exc).__name__ + ": " + " ".join(str(exc).split()))
    sys.exit(0)
cls = getattr(module, cls_name, None)
if cls is None:
    found = sorted(n for n, v in vars(module).items()
                   if inspect.isclass(v) and hasattr(v, "handle_wi"))
    out(error=f"it has no class {cls_name}"
              + (f" (handler classes in it: {', '.join(found)}; use --class)" if found else ""))
elif not inspect.isclass(cls):
    out(error=f"{cls_name} in it is not a class")
else:
    try:
        check_handler(cls, cls_name)
    except ParticipantConfigError as exc:
        out(error=str(exc).removeprefix(cls_name + ": "))
    else:
        out(ok=True)
"""


def check_name(name: str) -> str:
    """A participant name: letters, digits, ``_ . -`` (it names a file,
    supervisor programs and, by default, a queue)."""
    if not NAME_RE.match(name or ""):
        raise Invalid(
            f"invalid participant name {name!r}: use letters, digits, '_', '.' "
            "and '-' (not starting with '.' or '-')"
        )
    return name


def check_code(
    code: str | os.PathLike[str],
    class_name: str = "ParticipantHandler",
    *,
    python: str,
    timeout: float = 60.0,
) -> Path:
    """The code file, made absolute, once it imports and its ``class_name``
    has ``handle_wi(self, wi)``."""
    path = Path(code).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.exists():
        raise Invalid(f"code file {path}: no such file")
    if not path.is_file():
        raise Invalid(f"code file {path}: not a file")
    if path.suffix != ".py":
        raise Invalid(f"code file {path}: not a .py file")
    if not class_name.isidentifier():
        raise Invalid(f"class {class_name!r}: not a Python class name")
    try:
        source = path.read_text(encoding="utf-8")
        ast.parse(source, str(path))
    except SyntaxError as exc:
        raise Invalid(f"code file {path}: line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"code file {path}: cannot read: {exc}") from None
    try:
        proc = subprocess.run(
            [python, "-c", _CHECK, str(path), class_name],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=path.parent,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise Invalid(f"code file {path}: importing it took more than {timeout:g}s") from None
    except OSError as exc:
        raise Invalid(f"cannot run {python} to check {path}: {exc.strerror}") from None
    verdict = None
    for line in proc.stdout.splitlines():
        if line.startswith("SKYNET-CHECK "):
            verdict = json.loads(line.removeprefix("SKYNET-CHECK "))
    if verdict is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])
        raise Invalid(f"code file {path}: checking it failed (exit {proc.returncode}) {tail}")
    if "error" in verdict:
        raise Invalid(f"code file {path}: {verdict['error']}")
    return path


def check_user(user: str) -> pwd.struct_passwd:
    """The run-as user's password entry (``Invalid`` if there is none)."""
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise Invalid(f"no such user {user!r} on this host (run-as user)") from None


def describe(code: str, class_name: str) -> str:
    """What a participant does: ``description`` from a YAML file next to the
    code (``<code>.yaml``), else the handler class's docstring, else the
    module's; read without importing the code."""
    path = Path(code)
    for sidecar in (path.with_suffix(".yaml"), path.with_suffix(".yml")):
        if sidecar.is_file():
            import yaml

            try:
                data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                data = None
            if isinstance(data, dict) and data.get("description"):
                return str(data["description"]).strip()
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            doc = ast.get_docstring(node)
            if doc:
                return doc.strip()
    return (ast.get_docstring(tree) or "").strip()
