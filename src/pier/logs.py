"""pier's log lines on stderr: text for people, or one JSON object per line for machines.

configure() sets up the root logger once per process (the server, and each worker of `--workers N`), so
every logger (pier's own, Granian's, Alembic's) comes out in the one format. In JSON every line has
`time` (ISO 8601, UTC), `level` and `logger`, then `message` (a traceback is one `exception` string), or
for a request line (web/exchange.py) the request's fields. Nothing here decides what is safe to log: callers
never pass secrets (see web/exchange.py for what a request line holds).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# A record carrying a request's fields keeps them under this attribute (logging's `extra`).
FIELDS = "pier_fields"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Libraries whose debug lines carry request headers (S3 signatures, credentials): never below INFO.
QUIET_BELOW_INFO = ("botocore", "boto3", "s3transfer", "urllib3")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _utc(record.created), "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, FIELDS, None)
        if fields:
            line.update(fields)  # a request line: its fields say it all, no message text
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return _ENCODER.encode(line)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
_second: tuple[int, str] = (-1, "")


def _utc(created: float) -> str:
    """2026-01-31T12:34:56.789Z; the date and time of a second are worked out once for all its lines."""
    global _second
    whole, cached = int(created), _second  # one read: another thread may replace it meanwhile
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{int((created - whole) * 1000):03d}Z"


def configure(log_format: str, level: str) -> None:
    """One handler on stderr for the root logger, in the chosen format; replaces whatever was there."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Nothing pier writes uses the caller's file and line, thread or process names: not working them out
    # for every record takes a third off a request line's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin at each start
    for chatty in QUIET_BELOW_INFO:  # their debug lines show signed requests, even at --log-level debug
        logging.getLogger(chatty).setLevel(logging.INFO)


def granian_config() -> dict[str, Any]:
    """Granian's logging.config: its loggers send their lines to the root logger (configure() above)
    instead of printing their own format on stdout."""
    return {
        "formatters": {},
        "handlers": {},
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
        },
    }
