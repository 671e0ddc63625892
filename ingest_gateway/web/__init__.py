"""The HTTP layer: routes, keys, browsers' rules, error answers, the services, the description.

- ``routing``: the one route table and its dispatcher (``Surface``, ``Routes``).
- ``errors``: ``ApiError`` and each API's error format; the only place where the write
  path's domain errors (``write.sink``) and outages become status codes.
- ``request``: Starlette's request with cheaper header and body reads;
  ``responses``: orjson answers.
- ``auth`` + ``auth_cache``: every surface's keys, key → team or 401, cached 10 s.
- ``cors``: surfaces browsers send to (the Segment spec); ``hosts``: the address
  clients are told (``PUBLIC_BASE_URL`` or a trusted Host, else 421).
- ``deps``: the process's services, typed (settings, the pool, the publisher).
- ``openapi``: the description made from the route table; ``health``: ``/healthz``,
  ``/readyz``.

Named ``web`` rather than ``http``: a module named like the standard library's
``http`` would read as it in every import list, and shadow it for a script run from
this folder.

May import ``read_model`` (keys, allowed origins), ``write.sink`` (its domain errors)
and ``write.publisher`` (the type of the service), ``runtime`` and ``schemas``; never
a surface.
"""
