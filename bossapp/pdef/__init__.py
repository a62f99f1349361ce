"""Convert ruote process definitions (``.pdef``, the Ruby DSL BOSS sites
wrote their processes in) into our YAML process language.

Pure text in, text out: ``convert(text, filename)`` gives the YAML text and
the findings (constructs not translated); it raises ``PdefSyntaxError`` when
the text cannot be read. The stages, each its own module:

* ``lexer``: tokens (strings with Ruby's escapes, symbols, comments, ...)
* ``parser``: a tree of calls with positions and comments (``tree``)
* ``translate``: that tree to our language's structure (``ytree``) plus
  the findings
* ``emit``: the YAML text, comments kept

``boss convert`` (``bossapp/cli/convert.py``) is the command;
``docs/converting-pdef.md`` the mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from bossapp.pdef.emit import emit
from bossapp.pdef.lexer import PdefSyntaxError
from bossapp.pdef.parser import parse
from bossapp.pdef.translate import Finding, NotTranslated, translate

__all__ = ["Conversion", "Finding", "PdefSyntaxError", "convert"]


@dataclass
class Conversion:
    """The result of converting one file: ``yaml`` (always a loadable
    definition), ``findings`` (what was not translated, in source order) and
    ``statements`` (how many ruote statements were translated)."""

    yaml: str
    findings: list[Finding] = field(default_factory=list)
    statements: int = 0

    @property
    def complete(self) -> bool:
        return not self.findings


def convert(text: str, filename: str = "<pdef>", default_name: str | None = None) -> Conversion:
    """Convert the ruote definition ``text`` (``filename`` is only used in
    messages; a definition without a name is named ``default_name``, by
    default the file's stem).

    Raises ``PdefSyntaxError`` (with ``line``, ``col`` and ``message``) when
    the text cannot be parsed or holds no ``Ruote.process_definition``."""
    if default_name is None:
        name = PurePath(filename).name
        default_name = name[: -len(".pdef")] if name.endswith(".pdef") else PurePath(name).stem
    program = parse(text)
    try:
        result = translate(program, text, filename, default_name)
    except NotTranslated as e:
        raise PdefSyntaxError(e.line, e.col, e.why) from None
    findings = sorted(result.findings, key=lambda f: (f.line, f.col))
    return Conversion(emit(result.doc), findings, result.statements)
