"""The audit log: one JSON line per mutating call, saying who did what to what, and how it ended.

Never holds secrets: no headers, bodies, tokens or passwords, only names the caller chose (repository,
tag) and the outcome.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._logger = logging.getLogger(f"pier.audit.{path}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        if not self._logger.handlers:
            handler = logging.FileHandler(path, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._logger.addHandler(handler)

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
        self._logger.info(json.dumps(entry, separators=(",", ":")))

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
