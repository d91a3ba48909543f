"""A fault-injecting HTTP proxy in front of moto's S3 server, switched from the test while pier runs.

It forwards requests one at a time, as tests/backends.py's SerialProxy does (moto answers 500 to
concurrent PUTs of one key, which real S3 does not), and in each mode does to every request:

    PASS   forward it
    FAIL   answer 503 ServiceUnavailable (S3's XML error body), as S3 does when it is unavailable
    RESET  reset the connection (RST) without an answer
    STALL  hold it until the mode changes, then do what the new mode says
    FLAKY  answer 503 to every `every`-th request and forward the others

`requests` counts the requests seen and `injected` those given a fault.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import struct
import threading
from typing import Any

from tests.roundrobin import relay, send

PASS, FAIL, RESET, STALL, FLAKY = "pass", "503", "reset", "stall", "flaky"
UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Service is unable to handle request.</Message><RequestId>faultproxy</RequestId></Error>"
)


class FaultProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend_port: int) -> None:
        self.backend = ("127.0.0.1", backend_port)
        self.mode = PASS
        self.every = 3
        self.requests = 0
        self.injected = 0
        self._flaky_seen = 0
        self._closing = False
        self._state = threading.Condition()
        self._forwarding = threading.Lock()  # one request at a time to moto
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="faultproxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def set(self, mode: str, every: int = 3) -> None:
        with self._state:
            self.mode, self.every = mode, every
            self._flaky_seen = 0
            self._state.notify_all()

    def decide(self) -> str:
        """What to do with the next request (waits while the mode is STALL)."""
        with self._state:
            while self.mode == STALL and not self._closing:
                self._state.wait(0.5)
            self.requests += 1
            action = PASS if self._closing else self.mode
            if action == FLAKY:
                self._flaky_seen += 1
                action = FAIL if self._flaky_seen % self.every == 0 else PASS
            if action != PASS:
                self.injected += 1
            return action

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        with self._forwarding:
            connection = http.client.HTTPConnection(*self.backend, timeout=120)
            try:
                send(connection, method, path, headers, body)
                response = connection.getresponse()
                return response, response.read()
            finally:
                connection.close()

    def close(self) -> None:
        with self._state:
            self._closing = True
            self._state.notify_all()
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up, or a connection reset on purpose


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy: FaultProxy = self.server  # type: ignore[assignment]
        body = self._body()
        action = proxy.decide()
        if action == RESET:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()  # with linger 0: a reset, not a FIN
            return
        if action == FAIL:
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(UNAVAILABLE)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(UNAVAILABLE)
            return
        response, data = proxy.forward(self.command, self.path, self.headers.items(), body)
        relay(self, response, data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def log_message(self, *args: Any) -> None:
        pass
