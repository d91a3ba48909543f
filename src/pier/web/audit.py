"""The audit log: one JSON line per mutating call, saying who did what to what, and how it ended.

Never holds secrets: no headers, bodies, tokens or passwords, only names the caller chose (repository,
tag) and the outcome.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("pier.audit")


class AuditLog:
    """Appends each entry with one write(2) on an O_APPEND descriptor: lines from several pier processes
    never interleave, and an entry is in the file (the kernel's) when record() returns. (Through the
    logging module, an entry cost about as much Python as the request it recorded.)"""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.lost = 0
        self._warned = -60.0

    def record(
        self,
        *,
        door: str,
        action: str,
        principal: str | None,
        address: str | None,
        target: str,
        status: int,
        error: str | None = None,
        request_id: str | None = None,
        **extra: Any,
    ) -> None:
        entry = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "door": door,
            "action": action,
            "principal": principal or "anonymous",
            "address": address,
            "target": target,
            "status": status,
            "error": error,
            "request_id": request_id,
            **extra,
        }
        line = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        try:
            written = os.write(self._fd, line)
            if written < len(line):  # the disk filled mid-line: end the line, or fail trying
                os.write(self._fd, line[written:])
        except OSError as error:
            # The answer the client gets must not change because its record could not be kept (a full disk
            # would otherwise turn a 201 into a 500). Say so, at most once a minute.
            self.lost += 1
            now = time.monotonic()
            if now - self._warned >= 60:
                self._warned = now
                log.warning("audit log: %d entr(y/ies) could not be written so far: %s", self.lost, error)

    def close(self) -> None:
        os.close(self._fd)
