"""``engine.settings``: a section declared as a dataclass, and its one loader."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from engine import config as engine_config
from engine.settings import (
    ConfigError,
    Section,
    at_least,
    checked,
    config_paths,
    convert,
    locate,
    not_negative,
    positive,
    read_ini,
    setting,
    to_duration,
    to_urls,
)


@dataclass(frozen=True)
class Demo(Section):
    SECTION: ClassVar[str] = "demo"
    ENV_PREFIX: ClassVar[str] = "DEMO_"

    name: str = "x"
    flag: bool = False
    count: int = setting(1, check=at_least(1))
    ratio: float = setting(0.5, check=not_negative())
    timeout: float = setting(3.0, coerce=to_duration, check=positive("seconds"))
    words: tuple[str, ...] = ()
    peers: tuple[str, ...] = setting((), coerce=to_urls)
    maybe: float | None = None
    class_name: str = setting("C", key="class")
    even: int = setting(2, check=checked(lambda v: v % 2 == 0, "must be even"))
    source: str = setting("", internal=True)


def ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "demo.ini"
    path.write_text(text)
    return path


def test_defaults_without_a_file_or_variables(tmp_path: Path) -> None:
    d = Demo.load(None, environ={"BOSS_CONFIG": "/dev/null"})
    assert d == Demo()
    assert (d.name, d.count, d.words, d.source) == ("x", 1, (), "")


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = ini(tmp_path, "[demo]\nname = file\ncount = 3\nratio = 1.5 ; a comment\n")
    d = Demo.load(path, environ={"DEMO_COUNT": "4"})
    assert (d.name, d.count, d.ratio, d.source) == ("file", 4, 1.5, str(path))
    d = Demo.load(path, environ={"DEMO_COUNT": "4"}, count=5, name=None)
    assert (d.name, d.count) == ("file", 5)  # None: not given
    # the file is found through config_paths ($BOSS_CONFIG first)
    assert Demo.load(environ={"BOSS_CONFIG": str(path)}).name == "file"
    assert config_paths({"BOSS_CONFIG": str(path)}) == [path]
    values, origin = Demo.collect(read_ini(path), str(path), environ={"DEMO_COUNT": "4"})
    assert origin == {
        "name": f"{path}: [demo]",
        "count": "environment DEMO_COUNT:",
        "ratio": f"{path}: [demo]",
    }
    assert values["count"] == "4"


def test_every_coercion() -> None:
    d = Demo.from_mapping(
        {
            "flag": " Yes ",
            "count": "7",
            "ratio": "0.25",
            "timeout": "1m30s",
            "words": "a, b  c",
            "peers": "http://a:1/, http://b:2",
            "maybe": "2",
            "class": "Handler",
            "name": "  padded ",
        }
    )
    assert d.flag is True and d.count == 7 and d.ratio == 0.25 and d.timeout == 90.0
    assert d.words == ("a", "b", "c") and d.peers == ("http://a:1", "http://b:2")
    assert d.maybe == 2.0 and d.class_name == "Handler" and d.name == "padded"
    for raw in ("1", "true", "on", "yes", "TRUE"):
        assert convert("bool", raw) is True
    for raw in ("0", "false", "off", "no", "No"):
        assert convert("bool", raw) is False
    assert convert("tuple[str, ...]", "a,b") == ("a", "b")
    assert convert("float | None", " 2.5 ") == 2.5
    # values that are not strings are taken as they are (a list as a tuple)
    assert Demo.from_mapping({"count": 0, "words": ["a"]}) == Demo(count=0, words=("a",))
    assert Demo().replace(count="9", words="p q").count == 9
    assert Demo().replace(words="p q").words == ("p", "q")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"flag": "maybe"}, "[demo] flag = 'maybe': not a boolean (true/false)"),
        ({"count": "many"}, "[demo] count = 'many': not an integer"),
        ({"count": "0"}, "[demo] count = '0': must be at least 1"),
        ({"ratio": "x"}, "[demo] ratio = 'x': could not convert string to float: 'x'"),
        ({"ratio": "-1"}, "[demo] ratio = '-1': must not be negative"),
        ({"timeout": "0"}, "[demo] timeout = '0': must be more than 0 seconds"),
        ({"timeout": "5M"}, "[demo] timeout = '5M': invalid duration '5M'"),
        ({"even": "3"}, "[demo] even = '3': must be even"),
        ({"colour": "red"}, "[demo] unknown key 'colour'; known: class, count, even, flag"),
        ({"source": "x", "class_name": "y"}, "[demo] unknown key 'class_name'"),
    ],
)
def test_bad_values_name_the_section_and_key(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Demo.from_mapping(values)
    assert message in str(exc.value)
    assert exc.value.key == next(k for k in values if k != "source")


def test_errors_name_the_file_or_the_variable(tmp_path: Path) -> None:
    path = ini(tmp_path, "[demo]\ncount = zero\n")
    with pytest.raises(ConfigError, match=r"demo\.ini: \[demo\] count = 'zero': not an integer"):
        Demo.load(path, environ={})
    with pytest.raises(ConfigError, match=r"^environment DEMO_FLAG: flag = 'x': not a boolean"):
        Demo.load(None, environ={"BOSS_CONFIG": "/dev/null", "DEMO_FLAG": "x"})
    path.write_text("[demo]\ncount = 2\n")
    env = {"BOSS_CONFIG": str(path), "DEMO_SOURCE": "x"}  # no variable sets an internal field
    assert Demo.load(None, environ=env).source == str(path)
    path.write_text("[demo]\nsource = /etc/passwd\n")  # internal: only the loader sets it
    with pytest.raises(ConfigError, match=r"demo\.ini: \[demo\] unknown key 'source'"):
        Demo.load(path, environ={})


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.ini: no such configuration file"):
        Demo.load(tmp_path / "nope.ini", environ={})
    with pytest.raises(ConfigError, match=r"nope\.ini: no such configuration file"):
        read_ini(tmp_path / "nope.ini")
    assert locate(tmp_path / "nope.ini", {}, missing_ok=True) is None
    bad = ini(tmp_path, "[demo\n")
    with pytest.raises(ConfigError) as exc:
        Demo.load(bad, environ={})
    assert str(exc.value).startswith(f"{bad}: File contains no section headers")
    assert "\n" not in str(exc.value)  # one line: what supervisor's log shows first


def test_a_section_may_require_its_section(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Strict(Section):
        SECTION: ClassVar[str] = "strict"
        NEEDS_SECTION: ClassVar[bool] = True
        key: str = ""

    path = ini(tmp_path, "[other]\n")
    with pytest.raises(ConfigError, match=r"demo\.ini: no \[strict\] section"):
        Strict.load(path, environ={})
    assert Demo.load(path, environ={}) == Demo(source=str(path))


def test_from_parser_without_a_file() -> None:
    parser = configparser.ConfigParser()
    parser.read_string("[demo]\nname = p\n")
    assert Demo.from_parser(parser, environ={"DEMO_NAME": "e"}).name == "e"
    with pytest.raises(ConfigError, match=r"^\[demo\] count = 'x'"):
        Demo.from_parser(parser, environ={}, count="x")


def test_engine_config_keeps_its_names() -> None:
    assert engine_config.ConfigError is ConfigError
    assert engine_config.config_paths is config_paths
    assert issubclass(engine_config.Config, Section)
