"""JSON responses rendered with orjson (faster than the standard library, strict on
input), and ``DryRun``, an answer raised from deep in the write path."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class DryRun(Exception):
    """The answer to a ``?validate=true`` request (``write.tracking``): the verdicts,
    nothing published; ``web.errors`` answers with ``response`` as it is."""

    def __init__(self, response: Response) -> None:
        super().__init__("dry run")
        self.response = response
