"""The audit log: one JSON line per mutating call, saying who did what to what, and how it ended.

Never holds secrets: no headers, bodies, tokens or passwords, only names the caller chose (repository,
tag) and the outcome.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any


class AuditLog:
    """Appends each entry with one write(2) on an O_APPEND descriptor: lines from several pier processes
    never interleave, and an entry is in the file (the kernel's) when record() returns. (Through the
    logging module, an entry cost about as much Python as the request it recorded.)"""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

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
        os.write(self._fd, json.dumps(entry, separators=(",", ":")).encode() + b"\n")

    def close(self) -> None:
        os.close(self._fd)
