"""The edge: what happens to a request before any route sees it, and how it is read.

- ``server``: uvicorn's httptools protocol with the request deadlines of slow clients.
- ``postman_paths``: the Postman collection's paths made routable (an ASGI layer).
- ``body``: the streamed body limit (an ASGI layer), then JSON, urlencoded and
  multipart bodies read strictly (the JSON rules of ``write.validation``).
- ``content_encoding``: gzip bodies inflated as they stream in, capped.
- ``pacing``: long requests give the event loop a turn (``Pacer``).

May import the error answers (``web.errors``, ``web.responses``), ``write.validation``'s
rules, ``runtime`` and the standard library; never a route, a surface or the write path
beyond those rules.
"""
