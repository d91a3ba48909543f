"""A test proxy that sends each HTTP request to the next of several pier processes, and remembers which."""

from __future__ import annotations

import http.client
import http.server
import itertools
import threading
from typing import Any


class RoundRobin(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(range(len(ports)))
        self._lock = threading.Lock()
        self.served: list[tuple[str, str, int]] = []  # (method, path, index of the process)
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def pick(self, method: str, path: str) -> int:
        with self._lock:
            index = next(self._next)
            self.served.append((method, path, index))
            return index

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        server: RoundRobin = self.server  # type: ignore[assignment]
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        connection = http.client.HTTPConnection(
            "127.0.0.1", server.ports[server.pick(self.command, self.path)], timeout=120
        )
        send(connection, self.command, self.path, self.headers.items(), body)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        relay(self, response, data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _forward

    def log_message(self, *args: Any) -> None:
        pass


def send(connection: http.client.HTTPConnection, method: str, path: str, headers: Any, body: bytes) -> None:
    """Forward every header line as it came (skopeo sends several Accept lines; a dict would keep one)."""
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for key, value in headers:
        if key.lower() not in ("transfer-encoding", "content-length"):
            connection.putheader(key, value)
    if body or method in ("PUT", "POST", "PATCH"):
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body or None)


def relay(handler: http.server.BaseHTTPRequestHandler, response: http.client.HTTPResponse, data: bytes) -> None:
    """Send a backend's response (already read) back to the client, with a plain Content-Length."""
    handler.send_response(response.status)
    for key, value in response.getheaders():
        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
            handler.send_header(key, value)
    handler.send_header("Content-Length", response.getheader("Content-Length") or str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)
