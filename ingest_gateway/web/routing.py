"""The gateway's one route table, and the dispatcher that serves every request from it.

Each API dialect is a ``Surface`` (a path prefix, an OpenAPI tag, an error format)
whose module declares its routes with the decorators below; ``app.create_app``
collects the surfaces' routes into one ``Routes`` table. The same table serves the
requests (``Routes.__call__``) and describes them (``ingest_gateway.web.openapi``).

Why not FastAPI's router: measured in-process on the single-customer write, its
routing, dependency resolution and middleware stack cost 112-118 us a request
against 20 us for this dispatch (``POST /api/1.0/customer/{email}``, 20,000 calls
each, alternated twice), about a quarter of the gateway's CPU per single write.
What an endpoint gets instead is explicit: its path parameters by name, the team of
the API key (``team_id``, when the route is authenticated), the typed query
parameters (``query``, a ``msgspec.Struct`` the route declares) and the ``request``;
services come from ``ingest_gateway.web.deps``.

Imports: the error and auth layers of the gateway, its request (``web.request``) and
``runtime.logs`` only; never a surface.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from time import perf_counter
from typing import Any, Protocol

import msgspec
import msgspec.inspect
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ingest_gateway.web.auth import require_team
from ingest_gateway.web.errors import ApiError, ErrorFormatter, register_error_format
from ingest_gateway.web.request import Request as FastRequest
from runtime import logs

Endpoint = Callable[..., Awaitable[Response]]
ErrorRenderer = Callable[[Request, Exception], Awaitable[Response] | Response | None]

_PARAM = re.compile(r"{(\w+)}")
# How many leading literal path segments index the route table.
_KEY_SEGMENTS = 3


@dataclass(frozen=True)
class Route:
    """One operation: method and full path, the endpoint, and what OpenAPI says of it."""

    method: str
    path: str
    endpoint: Endpoint
    summary: str = ""
    tag: str | None = None
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    # Fragments of the OpenAPI operation (requestBody, extra header/query parameters).
    openapi_extra: dict[str, Any] = field(default_factory=dict)
    # The typed query parameters, passed to the endpoint as ``query``.
    query: type[msgspec.Struct] | None = None
    # JSON Schemas of path parameters by name (else any string), for OpenAPI.
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    authenticated: bool = True
    documented: bool = True
    status_code: int = 200  # the success answer, for OpenAPI

    @property
    def path_parameters(self) -> list[str]:
        return _PARAM.findall(self.path)


class Surface:
    """One API dialect: its prefix, OpenAPI tag, error format and routes."""

    def __init__(self, prefix: str, tag: str | None, error_format: ErrorFormatter | None) -> None:
        self.prefix = prefix
        self.tag = tag
        self.routes: list[Route] = []
        if error_format is not None:
            register_error_format(prefix, error_format)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str = "",
        responses: dict[int | str, dict[str, Any]] | None = None,
        openapi_extra: dict[str, Any] | None = None,
        query: type[msgspec.Struct] | None = None,
        path_schemas: dict[str, dict[str, Any]] | None = None,
        authenticated: bool = True,
        include_in_schema: bool = True,
        status_code: int = 200,
    ) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            self.routes.append(
                Route(
                    method=method,
                    path=self.prefix + path,
                    endpoint=endpoint,
                    summary=summary,
                    tag=self.tag,
                    responses=responses or {},
                    openapi_extra=openapi_extra or {},
                    query=query,
                    path_schemas=path_schemas or {},
                    authenticated=authenticated,
                    documented=include_in_schema,
                    status_code=status_code,
                )
            )
            return endpoint

        return register

    def get(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("DELETE", path, **options)


def _pattern(path: str) -> re.Pattern[str]:
    """The regular expression of a route path; a parameter is one path segment."""
    parts = _PARAM.split(path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


# An integer query parameter as written: an optional sign and ASCII digits. msgspec's
# lax conversion alone would also take "1e3" and "1.0" (as floats that are integral).
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Significant digits beyond these put a value out of any 64-bit bound whatever they
# are, and int() of more than 4300 fails: the bound check sees the first ones only.
_INTEGER_DIGITS = 24


@cache
def _integer_parameters(shape: type[msgspec.Struct]) -> tuple[str, ...]:
    """The names (as sent) of the parameters of ``shape`` typed ``int`` (or ``int | None``)."""

    def is_int(kind: msgspec.inspect.Type) -> bool:
        while isinstance(kind, msgspec.inspect.Metadata):  # Annotated[int, Meta(...)]
            kind = kind.type
        if isinstance(kind, msgspec.inspect.UnionType):  # int | None
            return any(is_int(member) for member in kind.types)
        return isinstance(kind, msgspec.inspect.IntType)

    fields = msgspec.inspect.type_info(shape).fields  # type: ignore[attr-defined]
    return tuple(f.encode_name for f in fields if is_int(f.type))


def _integer(name: str, text: str) -> int:
    if _INTEGER.fullmatch(text) is None:
        raise ApiError(
            400,
            f"Invalid parameter {name}: an integer is ASCII digits with an optional sign",
            field=name,
        )
    sign, digits = (text[0], text[1:]) if text[0] in "+-" else ("", text)
    return int(sign + (digits.lstrip("0")[:_INTEGER_DIGITS] or "0"))


def parse_query(request: Request, shape: type[msgspec.Struct]) -> msgspec.Struct:
    """The request's query parameters as ``shape``; ``ApiError(400)`` naming the first bad one.

    An ``int`` parameter is an optional sign and ASCII digits, nothing else (no
    exponent, fraction, ``_``, space or other digits); then its bounds are checked.
    """
    values: dict[str, Any] = dict(request.query_params)
    for parameter in _integer_parameters(shape):
        text = values.get(parameter)
        if text is not None:
            values[parameter] = _integer(parameter, text)
    try:
        return msgspec.convert(values, shape, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        name = message.rsplit("$.", 1)[1].rstrip("`") if "$." in message else None
        raise ApiError(400, f"Invalid parameter {name}: {message}", field=name) from exc


class RequestObserver(Protocol):
    """What is told of each answered request (the metrics, the access log): its route
    (None when no route matched), status and start (``perf_counter``); ``in_flight``
    counts the requests being served."""

    in_flight: int

    def __call__(self, scope: Scope, route: Route | None, status: int, started: float) -> None: ...


class Routes:
    """The ASGI application serving the route table; errors rendered by ``render_error``.

    A path no route matches is 404 and a known path with another method 405, in the
    error format of the surface its prefix belongs to.
    """

    def __init__(
        self,
        routes: Iterable[Route],
        render_error: ErrorRenderer,
        observers: Sequence[RequestObserver] = (),
    ) -> None:
        self.table = list(routes)
        self._render_error = render_error
        self._observers = tuple(observers)
        # Indexed by method and by the literal segments a path starts with (up to
        # _KEY_SEGMENTS of them): a request tries the few routes of its bucket, not
        # the whole table. In a bucket, literal paths come first ("/events/{id}" must
        # not shadow a literal sibling).
        ordered = sorted(self.table, key=lambda r: len(r.path_parameters))
        self._index: dict[tuple[str, str], list[tuple[re.Pattern[str], Route]]] = {}
        for route in ordered:
            literal = route.path.split("{", 1)[0].rstrip("/").split("/")[1 : _KEY_SEGMENTS + 1]
            key = (route.method, "/" + "/".join(literal))
            self._index.setdefault(key, []).append((_pattern(route.path), route))
        self._methods = sorted({route.method for route in self.table})

    def _candidates(self, method: str, path: str) -> Iterable[tuple[re.Pattern[str], Route]]:
        segments = path.split("/", _KEY_SEGMENTS + 1)[1 : _KEY_SEGMENTS + 1]
        for n in range(len(segments), -1, -1):
            yield from self._index.get((method, "/" + "/".join(segments[:n])), ())

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | list[str]:
        """The route and its path parameters, or the methods the path allows."""
        for pattern, route in self._candidates(method, path):
            if matched := pattern.fullmatch(path):
                return route, matched.groupdict()
        return [
            other
            for other in self._methods
            if any(pattern.fullmatch(path) for pattern, _ in self._candidates(other, path))
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        logs.about_request(scope)
        observers = self._observers
        if not observers:
            await self._answer(scope, receive, send)
            return
        started = perf_counter()
        for observer in observers:
            observer.in_flight += 1
        try:
            status = await self._answer(scope, receive, send)
        finally:
            for observer in observers:
                observer.in_flight -= 1
        for observer in observers:
            observer(scope, scope.get("route"), status, started)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Serve the request; the status of its answer."""
        request = FastRequest(scope, receive, send)
        try:
            response = await self._serve(request)
        except Exception as exc:
            rendered = self._render_error(request, exc)
            answer = await rendered if isinstance(rendered, Awaitable) else rendered
            if answer is None:
                raise
            response = answer
        await response(scope, receive, send)
        return response.status_code

    async def _serve(self, request: Request) -> Response:
        found = self._match(request.method, request.scope["path"])
        if isinstance(found, list):
            if found:
                raise ApiError(405, "Method not allowed", headers={"Allow": ", ".join(found)})
            raise ApiError(404, "Not found")
        route, path_parameters = found
        request.scope["route"] = route  # (as Starlette names it) for the metrics
        arguments: dict[str, Any] = dict(path_parameters)
        if route.authenticated:
            arguments["team_id"] = await require_team(request)
        if route.query is not None:
            arguments["query"] = parse_query(request, route.query)
        return await route.endpoint(**arguments, request=request)
