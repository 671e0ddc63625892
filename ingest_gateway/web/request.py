"""The request every endpoint gets: Starlette's, with the two reads every write makes
done in fewer steps.

A single-customer write reads five headers and its body. Starlette looks a header up
by lowercasing and encoding its name and scanning the list, and a missing one costs a
``KeyError`` caught inside ``Mapping.get``; it reads a body through an async generator
under ``aclosing``. Together that was about 8% of the gateway's instructions for
such a write (``python -m bench.instructions single``, docs/benchmark.md). Here the
headers are indexed once, and a body is read by a plain loop. What either returns is
what Starlette's would: the first of repeated headers, ``ClientDisconnect`` on a
disconnect (``tests/gateway/test_request.py`` holds them side by side).

Imports Starlette only.
"""

from __future__ import annotations

from typing import Any

import starlette.datastructures
import starlette.requests
from starlette.requests import ClientDisconnect
from starlette.types import Scope


class Headers(starlette.datastructures.Headers):
    """Starlette's ``Headers`` of a request, looked up through a dict."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        # Reversed, so that the first of a repeated header wins, as in Starlette.
        self._index = dict(reversed(self._list))

    def get(self, key: str, default: Any = None) -> Any:
        value = self._index.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __getitem__(self, key: str) -> str:
        value = self._index.get(key.lower().encode("latin-1"))
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower().encode("latin-1") in self._index


class Request(starlette.requests.Request):
    """Starlette's ``Request`` with ``Headers`` above and a body read without a
    generator."""

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = Headers(scope=self.scope)
        return self._headers  # type: ignore[return-value]  # (always ours, set above)

    async def body(self) -> bytes:
        if hasattr(self, "_body"):
            return self._body
        if self._stream_consumed:
            raise RuntimeError("Stream consumed")
        chunks: list[bytes] = []
        while not self._stream_consumed:
            message = await self._receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._stream_consumed = True
            elif message["type"] == "http.disconnect":
                self._is_disconnected = True
                raise ClientDisconnect()
        self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._body
