"""The server's own log of HTTP requests (uvicorn's access log), off unless asked for.

Query strings carry what clinicians search for: `Patient?identifier=<CPR system>|<CPR
number>`, names, birth dates. A line per request with them would copy national IDs
into stdout, and from there into journald, container logs and log shippers, outside the
access rules and retention of the record. Who looked at what is already written where
it belongs: the hash-chained access log the citizen reads (health/audit/). So
`health serve` writes no request lines by default; with `--request-log` it writes
method, path, protocol and status, with the query string cut off.

Switching the lines off also takes their cost off every request: formatting a line
(uvicorn copies the record and colours it) was about a tenth of the server's time for
a read of one Patient (docs/BENCHMARKS.md, "The server's request log").
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import uvicorn.config

# uvicorn's access record args: (client_addr, method, full_path, http_version, status).
_PATH_ARG = 2


class WithoutQuery(logging.Filter):
    """Cuts the query string off the path of uvicorn's access log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG and isinstance(args[_PATH_ARG], str):
            path = args[_PATH_ARG].split("?", 1)[0]
            record.args = (*args[:_PATH_ARG], path, *args[_PATH_ARG + 1 :])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with `WithoutQuery` on its access handler.

    Given as configuration, not added to a logger, so that every worker process (which
    configures its logging anew) applies it.
    """
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["without_query"] = {"()": f"{__name__}.WithoutQuery"}
    config["handlers"]["access"]["filters"] = ["without_query"]
    return config
