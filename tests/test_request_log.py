"""The server's request log: off by default, and never with a query string."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from health import cli, request_log

CPR_SEARCH = "/fhir/Patient?identifier=urn:oid:1.2.208.176.1.2|0101701234"


@pytest.fixture
def access_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """uvicorn's access logger configured by `log_config`, writing to a buffer."""
    config = request_log.log_config()
    config["handlers"]["access"]["stream"] = io.StringIO()
    logger = logging.getLogger("uvicorn.access")
    saved = logger.handlers, logger.propagate, logger.level
    logging.config.dictConfig(config)
    handler = logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    try:
        yield logger, handler.stream
    finally:
        logger.handlers, logger.propagate, logger.level = saved


def test_a_request_line_keeps_the_path_and_drops_the_query(
    access_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = access_logger

    # The call uvicorn makes once a response is sent.
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", CPR_SEARCH, "1.1", 200)

    line = stream.getvalue()
    assert '"GET /fhir/Patient HTTP/1.1" 200' in line
    assert "0101701234" not in line
    assert "identifier" not in line


def test_records_of_another_shape_pass_unchanged() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s", ("x?y",), None)

    assert request_log.WithoutQuery().filter(record)
    assert record.args == ("x?y",)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """What `health serve` hands uvicorn, on a fresh SQLite database, serving nothing."""
    monkeypatch.setenv("HEALTH_DATABASE_URL", f"sqlite:///{tmp_path / 'served.db'}")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **options: calls.append(options))
    return calls


def test_serve_logs_no_request_lines_by_default(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(cli.app, ["serve"])

    assert result.exit_code == 0, result.output
    assert served[0]["access_log"] is False


def test_serve_request_log_logs_lines_without_queries(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(cli.app, ["serve", "--request-log"])

    assert result.exit_code == 0, result.output
    assert served[0]["access_log"] is True
    assert served[0]["log_config"]["handlers"]["access"]["filters"] == ["without_query"]
