"""Boolean query parameters of a write (``?wait=``, ``?validate=``), read one way.

Imports Starlette's request and ``web.errors``.
"""

from __future__ import annotations

from starlette.requests import Request

from ingest_gateway.web.errors import ApiError

# What a boolean parameter may say (without case): as the OpenAPI types it, and the
# 1/0, yes/no that clients wrote before it did.
_BOOLEAN = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def flag(request: Request, name: str) -> bool:
    """The boolean query parameter ``name`` (absent: False); ``ApiError(400)`` when it
    is no boolean (``?wait=null``)."""
    # Parsing the query string costs more than the rest of a small write's checks:
    # most writes have none, or not this name in it.
    if name.encode() not in request.scope.get("query_string", b""):
        return False
    text = request.query_params.get(name)
    if text is None:
        return False
    said = _BOOLEAN.get(text.lower())
    if said is None:
        raise ApiError(400, f"Invalid parameter {name}: true or false", field=name)
    return said
