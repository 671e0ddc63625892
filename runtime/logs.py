"""How every process logs: text for people, or one JSON object per line
(``LOG_FORMAT=json``) for a log pipeline, with what a line is about.

``configure(log_format, process)`` sets the root logger up once, as a process starts;
``uvicorn_config`` is the same for the gateway's uvicorn, which applies it in each
worker it spawns. A JSON line holds ``time``, ``level``, ``process``, ``logger``,
``message`` (and ``exception``), then, when the line is about a request or a write:

- ``request_id``: the request's ``X-Request-Id`` when it sent a usable one (a load
  balancer's), else one made for it; the same on every line about that request;
- ``team_id``: the team its API key belongs to, once known;
- ``message_ids``: the ids of the writes it publishes (the first 20), or of the
  message a consumer's line is about (``extra={"message_id": ..., "team_id": ...}``).

The gateway names the request a line is about by ``about_request(scope)`` as routing
starts (a context variable: each request is its own asyncio task); nothing is
computed for it unless a line is written. Imports orjson only.
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import os
import re
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# Where the gateway leaves, in a request's ASGI scope, what its lines name.
TEAM_KEY = "ingest.team_id"
MESSAGES_KEY = "ingest.messages"
_REQUEST_ID_KEY = "ingest.request_id"

_request: ContextVar[MutableMapping[str, Any] | None] = ContextVar("request", default=None)
_ids = itertools.count(1)
# An id a client or balancer sent is kept when it is short and plain (it goes into logs).
_USABLE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
TEXT_FORMAT = "%(asctime)s %(levelname)s {process} %(name)s: %(message)s"


def about_request(scope: MutableMapping[str, Any]) -> None:
    """Lines logged from now on in this task are about the request of ``scope``."""
    _request.set(scope)


def request_id(scope: MutableMapping[str, Any]) -> str:
    """The request's id: its ``X-Request-Id`` if usable, else made once for it."""
    found: str | None = scope.get(_REQUEST_ID_KEY)
    if found is None:
        sent = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), b"")
        usable = _USABLE_ID.fullmatch(sent)
        found = sent.decode() if usable else f"{os.getpid():x}-{next(_ids):x}"
        scope[_REQUEST_ID_KEY] = found
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's docstring)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        scope = _request.get()
        if scope is not None:
            line["request_id"] = request_id(scope)
            if TEAM_KEY in scope:
                line["team_id"] = scope[TEAM_KEY]
            if messages := scope.get(MESSAGES_KEY):
                line["message_ids"] = [m.id for m in messages[:20]]
        for field in ("team_id", "message_id"):
            if field in record.__dict__:
                line[field] = record.__dict__[field]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(log_format: str, process: str, level: str = "INFO") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a process: its root logger to stderr."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter, "process": process}
        if log_format == "json"
        else {"format": TEXT_FORMAT.format(process=process)}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        # uvicorn's own loggers go through the root's handler, in the same format; its
        # access log stays off (ACCESS_LOG is the gateway's own, with request ids).
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }


def configure(log_format: str, process: str, level: str = "INFO") -> None:
    """Set this process's logging up (as it starts)."""
    logging.config.dictConfig(logging_config(log_format, process, level))
