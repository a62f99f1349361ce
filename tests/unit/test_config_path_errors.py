"""A configuration path that does not exist or cannot be read is an error
naming it and the reason, never a silent fall-back to no file (which runs
on the embedded store): ``$BOSS_CONFIG`` and ``Config.load(path)`` for
library use (``ConfigError``), ``boss --config FILE`` and ``$BOSS_CONFIG``
for the CLI (click's usage error, exit status 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bossapp.cli import main
from engine.config import Config
from engine.settings import ConfigError, locate

GOOD = "[boss]\nkey_prefix = from-the-file:\n"


def test_boss_config_naming_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ini"
    with pytest.raises(ConfigError) as exc:
        Config.load(None, environ={"BOSS_CONFIG": str(missing)})
    assert str(exc.value) == f"{missing} (named by $BOSS_CONFIG): no such configuration file"


def test_boss_config_in_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nodir" / "boss.ini"
    with pytest.raises(ConfigError, match=r"no such configuration file \(no directory .*nodir\)"):
        Config.load(None, environ={"BOSS_CONFIG": str(missing)})


def test_boss_config_naming_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        Config.load(None, environ={"BOSS_CONFIG": str(tmp_path)})
    assert str(exc.value) == (
        f"{tmp_path} (named by $BOSS_CONFIG): a directory, not a configuration file"
    )
    with pytest.raises(ConfigError, match="a directory, not a configuration file"):
        Config.load(tmp_path, environ={})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_boss_config_naming_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "boss.ini"
    path.write_text(GOOD)
    path.chmod(0)
    with pytest.raises(ConfigError, match=r"boss\.ini \(named by \$BOSS_CONFIG\): cannot read"):
        Config.load(None, environ={"BOSS_CONFIG": str(path)})


def test_boss_config_naming_a_file_reads_it_and_dev_null_means_none(tmp_path: Path) -> None:
    path = tmp_path / "boss.ini"
    path.write_text(GOOD)
    assert Config.load(None, environ={"BOSS_CONFIG": str(path)}).key_prefix == "from-the-file:"
    assert locate(None, {"BOSS_CONFIG": os.devnull}) is None
    assert Config.load(None, environ={"BOSS_CONFIG": os.devnull}).key_prefix == "boss:"


def test_cli_config_option_naming_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ini"
    result = CliRunner().invoke(main, ["--config", str(missing), "ps"], env={"BOSS_CONFIG": ""})
    assert result.exit_code == 2, result.output
    assert f"File '{missing}' does not exist" in result.output


def test_cli_config_option_naming_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path), "ps"], env={"BOSS_CONFIG": ""})
    assert result.exit_code == 2, result.output
    assert f"File '{tmp_path}' is a directory" in result.output


def test_cli_boss_config_naming_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ini"
    result = CliRunner().invoke(main, ["ps"], env={"BOSS_CONFIG": str(missing)})
    assert result.exit_code == 2, result.output
    assert f"Error: $BOSS_CONFIG names {missing}: no such configuration file" in result.output
    assert "Usage: " in result.output


def test_boss_config_naming_no_regular_file_is_an_error(tmp_path: Path) -> None:
    fifo = tmp_path / "boss.ini"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as exc:
        Config.load(None, environ={"BOSS_CONFIG": str(fifo)})
    assert str(exc.value) == f"{fifo} (named by $BOSS_CONFIG): not a regular file"
