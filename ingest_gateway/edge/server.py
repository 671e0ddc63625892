"""The gateway's HTTP/1.1 protocol: uvicorn's httptools protocol with request deadlines.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``, restarted
by every byte received), so a client that sends half a request, or trickles one a
byte at a time, holds its connection and the memory of its half-read request for as
long as it likes (``Kludex/uvicorn`` issue #157). ``RequestDeadlineProtocol`` adds
the two deadlines that servers such as nginx, HAProxy and Node.js have:

* **Headers** (``HEADER_TIMEOUT_S``): a connection's first request must have all its
  headers within this time of the connection being accepted; a later request on a
  kept-alive connection within this time of its first byte (any byte counts, even the
  blank lines a parser skips between requests, so those cannot hold a connection
  either).
* **Body** (``BODY_TIMEOUT_S``): the whole body within this time of the end of the
  headers, however steadily its bytes arrive.

Time during which the server itself keeps the request from arriving does not count
against the client: a deadline that falls while the app has not consumed the body
already buffered (uvicorn stops reading at 64 KiB), while the client waits for the
``100 Continue`` that the app's first read of the body sends, or while an earlier
request on the connection is still being answered (pipelining), is pushed back by
its timeout.
What the app then takes to answer is not bounded here, and the time between requests
stays uvicorn's keep-alive timeout (``KEEP_ALIVE_TIMEOUT_S``).

When a deadline passes:

* a request was partly received and nothing has been answered to it: ``408 Request
  Timeout`` with ``Connection: close``, then the connection is closed. RFC 9110
  (section 15.5.9) defines 408 for exactly this, and HAProxy, Envoy, Node.js and
  Apache send it: a legitimate slow client learns why, and that it may retry on a
  new connection; it costs one small write, and the connection is closed either way.
  (nginx and Go close without a word.) An app still waiting for the body reads a
  disconnect, as if the client had gone.
* nothing of a request arrived (a connection opened and left idle), or an answer is
  already under way (the app answered before reading the whole body): the connection
  is closed without a word, as on an idle keep-alive timeout. A 408 there would
  announce nothing, and could race a request the client is just sending.

Cost on the hot path: one timer per connection, re-armed only when it fires (on a busy
connection about once per ``HEADER_TIMEOUT_S``); per request, ``data_received`` and
three parser callbacks overridden, which read the loop's clock twice and store a few
attributes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from runtime.settings import get_settings

# uvicorn's own logger, as for the requests its protocol refuses: it has a handler in
# every worker process (the root logger has one only in the parent).
log = logging.getLogger("uvicorn.error")

# What the connection is receiving: between requests, a request's headers, its body.
_IDLE, _HEADERS, _BODY = 0, 1, 2
# libuv counts timers in milliseconds, so a timer may fire this much before its time.
_EARLY_S = 0.005
# The callbacks run for every request call the base class's functions directly:
# super() costs about 60 ns a call (Python 3.11).
_data_received = HttpToolsProtocol.data_received
_on_message_begin = HttpToolsProtocol.on_message_begin
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete
_408_TAIL = (
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 15\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request Timeout"
)


class RequestDeadlineProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that closes connections not delivering a request in time.

    The timeouts come from the settings (``get_settings()``) of the process that
    serves the connection, so the class can be handed to uvicorn by reference and
    works the same in every worker process.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout = settings.header_timeout_s
        self.body_timeout = settings.body_timeout_s
        self._phase = _IDLE
        # When what is being received must be complete; None while no request is
        # being received (between requests, or while the app answers a whole one).
        self._deadline: float | None = None
        # One timer, due at _timer_at. It is left running when the deadline moves
        # later (it then re-arms itself when it fires), and moved only when the
        # deadline becomes earlier than it.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # Protocol interface

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_by(self.loop.time() + self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:  # else it keeps this protocol alive until it fires
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first byte of a request (or of junk)
            deadline = self._deadline = self.loop.time() + self.header_timeout
            if self._timer is None or self._timer_at > deadline:
                self._expect_by(deadline)
        _data_received(self, data)

    def handle_websocket_upgrade(self) -> None:
        self._deadline = None  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()

    # Parser callbacks

    def on_message_begin(self) -> None:
        _on_message_begin(self)
        self._phase = _HEADERS
        if self._deadline is None:  # pipelined: began in the data that ended the last one
            self._expect_by(self.loop.time() + self.header_timeout)

    def on_headers_complete(self) -> None:
        _on_headers_complete(self)
        self._phase = _BODY
        deadline = self._deadline = self.loop.time() + self.body_timeout
        if self._timer is None or self._timer_at > deadline:
            self._expect_by(deadline)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._deadline = None
        _on_message_complete(self)

    # Deadlines

    def _expect_by(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if deadline - now > _EARLY_S:  # moved on since: a later phase or request
            self._expect_by(deadline)
        elif self._server_holds_client():
            self._expect_by(now + self._timeout())  # give the client its time again
        else:
            self._expire()

    def _timeout(self) -> float:
        return self.body_timeout if self._phase == _BODY else self.header_timeout

    def _server_holds_client(self) -> bool:
        """Whether the server, not the client, keeps the request from arriving."""
        if self.flow.read_paused:  # the app is behind, or a pipelined request waits
            return True
        cycle = self.cycle
        if self._phase == _BODY:  # cycle is this request's
            # Queued behind an earlier request, or the client waits for the
            # "100 Continue" that the app's first read of the body sends.
            return bool(self.pipeline) or cycle.waiting_for_100_continue
        return cycle is not None and not cycle.response_complete  # answering the last one

    def _expire(self) -> None:
        phase, cycle = self._phase, self.cycle
        self._deadline = None
        if phase == _IDLE:
            # As quiet as uvicorn's keep-alive timeout: browsers open connections ahead.
            log.debug("%s: closed, no request within %.3g s", self._peer(), self.header_timeout)
            self.transport.close()
            return
        answered = False
        if phase == _BODY:
            answered = cycle.response_started
            if not cycle.response_complete:
                cycle.disconnected = True  # what the app still sends goes nowhere
                cycle.message_event.set()  # and its receive() returns a disconnect
        log.info(
            "%s: closed, request %s not received within %.3g s",
            self._peer(),
            "body" if phase == _BODY else "headers",
            self._timeout(),
        )
        if not answered:
            head = [STATUS_LINE[408]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head.append(_408_TAIL)
            self.transport.write(b"".join(head))
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"
