"""A small HTTP/1.1 client built for throughput: keep-alive, sendfile for bodies, recv_into for replies.

Also a trivial sink/source server, to measure this client's own ceiling (so a client limit is never
mistaken for a server's).
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from dataclasses import dataclass, field

BUFFER = 4 * 1024 * 1024


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    length: int = 0


@dataclass
class Connection:
    host: str
    port: int
    sock: socket.socket | None = None
    buffer: bytearray = field(default_factory=lambda: bytearray(BUFFER))
    pending: bytes = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection((self.host, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
            self.sock, self.pending = sock, b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        file: tuple[int, int, int] | None = None,
        keep_body: bool = False,
        prefix: bytes = b"",
    ) -> Reply:
        """Send a request; `file` = (fd, offset, count) is sent with sendfile after `prefix` and `body`."""
        sock = self._connect()
        length = len(prefix) + len(body) + (file[2] if file else 0)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + prefix + body)
        if file:
            fd, offset, count = file
            with os.fdopen(os.dup(fd), "rb") as handle:
                sock.sendfile(handle, offset, count)
        return self._reply(method, keep_body)

    def _reply(self, method: str, keep_body: bool) -> Reply:
        sock = self._connect()
        data = self.pending
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        if method == "HEAD" or status in (204, 304):
            self.pending = rest
            return Reply(status, headers)
        if headers.get("transfer-encoding") == "chunked":
            return self._chunked(status, headers, rest, keep_body)
        length = int(headers.get("content-length", "0"))
        kept = bytearray(rest[:length]) if keep_body else None
        received = min(len(rest), length)
        self.pending = rest[length:]
        view = memoryview(self.buffer)
        while received < length:
            n = sock.recv_into(view, min(len(view), length - received))
            if not n:
                raise ConnectionError("connection closed mid-body")
            if kept is not None:
                kept += view[:n]
            received += n
        return Reply(status, headers, bytes(kept) if kept is not None else b"", length)

    def _chunked(self, status: int, headers: dict[str, str], data: bytes, keep_body: bool) -> Reply:
        sock = self._connect()
        body = bytearray()
        while True:
            while b"\r\n" not in data:
                data += sock.recv(65536)
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                data += sock.recv(max(65536, size + 2 - len(data)))
            body += data[:size]
            data = data[size + 2 :]
            if size == 0:
                self.pending = data
                return Reply(status, headers, bytes(body) if keep_body else b"", len(body))


class Sink(socketserver.ThreadingTCPServer):
    """Answers every request at once: 201 to bodies it reads and discards, 200 with `source` to GETs."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, source: bytes = b"") -> None:
        self.source = source
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _SinkHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = memoryview(bytearray(BUFFER))
        data = b""
        source: bytes = self.server.source  # type: ignore[attr-defined]
        while True:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            received = min(len(data), length)
            data = data[length:]
            while received < length:
                received += sock.recv_into(buffer, min(len(buffer), length - received))
            if lines[0].startswith("GET"):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(source))
                sock.sendall(source)
            else:
                sock.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /x\r\n\r\n")
