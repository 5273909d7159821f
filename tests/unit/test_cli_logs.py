"""``--log-format json``: one JSON object per log line (time, level, logger, message, extra fields,
exception), no markup; ``text`` stays the terminal's format."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import pytest

from infrastructure.cli.console import JsonLogFormatter, configure_logging
from infrastructure.settings import Settings


@pytest.fixture
def restore_logging():
    yield
    configure_logging("INFO", "text")


def test_one_json_object_per_line_with_the_extra_fields(capsys, restore_logging):
    configure_logging("INFO", "json")
    log = logging.getLogger("parsec.node")
    log.info("partition %d assigned", 3, extra={"partition": 3, "node_id": "eu-1"})
    log.debug("not shown at INFO")
    try:
        raise RuntimeError("boom [bold]not markup[/]")
    except RuntimeError:
        log.exception("batch failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "INFO" and first["logger"] == "parsec.node"
    assert first["message"] == "partition 3 assigned" and first["partition"] == 3 and first["node_id"] == "eu-1"
    assert datetime.fromisoformat(first["time"]).utcoffset().total_seconds() == 0
    assert second["level"] == "ERROR" and "RuntimeError: boom [bold]not markup[/]" in second["exception"]


def test_a_value_json_cannot_encode_is_logged_as_text():
    record = logging.LogRecord("parsec", logging.INFO, __file__, 1, "x", None, None)
    record.payload = object()
    assert json.loads(JsonLogFormatter().format(record))["payload"].startswith("<object")


def test_the_setting_and_the_flag(monkeypatch):
    from infrastructure.cli import build_parser, settings_from

    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"PARSEC_LOG_FORMAT": "json"}).log_format == "json"
    monkeypatch.delenv("PARSEC_LOG_FORMAT", raising=False)
    assert settings_from(build_parser().parse_args(["--log-format", "json", "config"])).log_format == "json"
    with pytest.raises(ValueError, match="PARSEC_LOG_FORMAT must be one of text, json"):
        Settings.from_env({"PARSEC_LOG_FORMAT": "xml"})


def test_client_libraries_stay_quiet_below_warning_unless_debug(restore_logging):
    configure_logging("INFO", "json")
    assert logging.getLogger("kafka").getEffectiveLevel() == logging.WARNING
    configure_logging("DEBUG", "json")
    assert logging.getLogger("kafka").getEffectiveLevel() == logging.DEBUG
