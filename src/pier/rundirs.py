"""Directories that belong to one `pier serve` and live as long as it does: <data-dir>/<kind>/<pid>.

Its worker processes' metric files (prometheus_client's multiprocess mode, named to it by
PROMETHEUS_MULTIPROC_DIR, which must be set before pier.web.metrics is imported: this module imports
nothing of prometheus_client), the marks of its workers that are serving (serving.py, named to them by
PIER_WORKERS_DIR) and the certificate copies it serves (tls.py). Each starts empty; those of
serves that are gone are removed at the next start, so two serves may share a data dir.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKERS_ENV = "PIER_WORKERS_DIR"


def serve_dir(data_dir: Path, kind: str) -> Path:
    root = data_dir / kind
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(mode=0o700)
    return mine


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Where the workers of `pier serve --workers N` find the resolved config (a path, never the secrets).
WORKER_CONFIG_ENV = "PIER_WORKER_CONFIG"
