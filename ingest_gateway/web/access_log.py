"""The gateway's access log (``ACCESS_LOG``): a line per answered request.

The route template rather than the path, which may hold an email address; the
request id (``runtime.logs``) so that the line meets the request's other lines.
Imports ``runtime.logs`` and, for its type, ``web.routing``.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import TYPE_CHECKING

from starlette.types import Scope

from runtime.logs import request_id

if TYPE_CHECKING:
    from ingest_gateway.web.routing import Route

log = logging.getLogger("ingest_gateway.access")


class AccessLog:
    """A ``RequestObserver`` that logs: ``POST /api/1.0/customer/{email} 200 3.1 ms id=...``."""

    def __init__(self) -> None:
        self.in_flight = 0

    def __call__(self, scope: Scope, route: Route | None, status: int, started: float) -> None:
        method, template = (route.method, route.path) if route else (scope["method"], "(no route)")
        ms = (perf_counter() - started) * 1000
        log.info("%s %s %d %.1f ms id=%s", method, template, status, ms, request_id(scope))
