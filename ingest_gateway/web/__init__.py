"""The HTTP layer: routes, keys, browsers' rules, error answers, the services, the description.

- ``routing``: the one route table and its dispatcher (``Surface``, ``Routes``).
- ``errors``: ``ApiError`` and each API's error format; the only place where the write
  path's domain errors (``write.sink``) and outages become status codes.
- ``request``: Starlette's request with cheaper header and body reads;
  ``responses``: orjson answers.
- ``auth`` + ``auth_cache``: every surface's keys, key → team or 401, cached 10 s.
- ``cors``: surfaces browsers send to (the Segment spec); ``hosts``: the address
  clients are told (``PUBLIC_BASE_URL`` or a trusted Host, else 421).
- ``deps``: the process's services, typed (settings, the pool, the publisher, the
  quotas, controls, lanes and tracking plans, the key cache).
- ``query``: a write's boolean query parameters (``?wait=``, ``?validate=``).
- ``access_log``: a line per answered request (``ACCESS_LOG``).
- ``openapi``: the description made from the route table; ``health``: ``/healthz``,
  ``/readyz``.

Named ``web`` rather than ``http``: a module named like the standard library's
``http`` would read as it in every import list, and shadow it for a script run from
this folder.

May import ``read_model`` (keys, allowed origins), the write path's domain errors
(``write.sink``, ``write.quotas``) and the types of its services (``write.publisher``,
``write.quotas``, ``write.controls``, ``write.lanes``, ``write.tracking``, for
``deps``), ``runtime`` and ``schemas``; never a surface.
"""
