"""What clients built from the Postman collection send, made routable.

Its URLs end in ``{{debug}}`` (left literally when the variable is unset) and
sometimes a trailing slash; both are stripped before routing.
"""

from __future__ import annotations

from typing import TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send


class PostmanPathMiddleware:
    """Strips ``{{debug}}`` and a trailing slash from the path (and the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            cleaned = _cleaned(path, ("{{debug}}",), "/")
            if cleaned != path:
                # The raw path is cleaned the same way, not rebuilt from the decoded
                # one: it is what says whether the client sent valid UTF-8.
                raw = _cleaned(scope.get("raw_path") or path.encode(), _RAW_DEBUG, b"/")
                scope = dict(scope, path=cleaned, raw_path=raw)
        await self.app(scope, receive, send)


# How ``{{debug}}`` arrives in a raw path: as typed, or percent-encoded either case.
_RAW_DEBUG = (b"{{debug}}", b"%7B%7Bdebug%7D%7D", b"%7b%7bdebug%7d%7d")

AnyStr = TypeVar("AnyStr", str, bytes)


def _cleaned(path: AnyStr, debug_spellings: tuple[AnyStr, ...], slash: AnyStr) -> AnyStr:
    """``path`` without ``{{debug}}`` and without a trailing slash (the root stays)."""
    for debug in debug_spellings:
        path = path.replace(debug, path[:0])
    if len(path) > 1:
        path = path.rstrip(slash) or slash
    return path
