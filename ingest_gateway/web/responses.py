"""JSON responses rendered with orjson (faster than the standard library, strict on
input), and ``DryRun``, an answer raised from deep in the write path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # Starlette's, in fewer steps (every answer passes here): the headers given,
        # then the length and the type, unless given.
        given = (headers or {}).items()
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in given]
        if any(name in _SET_HERE for name, _ in raw):
            super().init_headers(headers)
            return
        if not (self.status_code < 200 or self.status_code in (204, 304)):
            raw.append((b"content-length", b"%d" % len(self.body)))
        raw.append((b"content-type", self.media_type.encode("latin-1")))
        self.raw_headers = raw


_SET_HERE = (b"content-length", b"content-type")


class DryRun(Exception):
    """A ``?validate=true`` request's answer (``write.tracking``): the verdicts, nothing
    published; ``web.errors`` answers ``200`` with ``body`` as it is."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.body = body
