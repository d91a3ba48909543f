"""Prometheus metrics: what pier counts, and GET /metrics in the text exposition format.

Every label takes a bounded set of values: doors and operations come from pier's own route table (an
unknown path or method is `unknown`), statuses are numbers, and no repository name or digest is ever a
label. With `--workers N` each process writes its numbers to files in a directory of the serve's own
(prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR, set by `pier serve` before this module
is imported; see rundirs.py), and /metrics in any worker adds them up: whole-registry numbers. With
one process they stay in memory.

pier_uploads_in_progress is read from the metadata store when scraped (uploads holding acknowledged
bytes, not yet finished, cancelled or expired, in the whole registry; an upload started and sent nothing
yet holds nothing: core/upload_ids.py), and pier_build_info is written out then.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pier import __version__
from pier.core.context import Core
from pier.rundirs import METRICS_ENV as MULTIPROCESS_ENV
from pier.web.threads import run_sync

log = logging.getLogger("pier.metrics")
SCRAPE_TIMEOUT = 5.0  # seconds the database may take to count uploads before the gauge is left out

# Re-read the environment: prometheus_client chose its value class when it was first imported, which
# may have been before `pier serve` set PROMETHEUS_MULTIPROC_DIR.
values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry()
# Registry operations take from a millisecond (a manifest) to minutes (a large layer on a slow link).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

REQUESTS = Counter(
    "pier_http_requests",
    "HTTP requests answered, by door (api, oci, gallery, web), operation and status (0: no answer was sent)",
    ["door", "operation", "status"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "pier_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by door and operation",
    ["door", "operation"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
BLOB_BYTES_RECEIVED = Counter(
    "pier_blob_bytes_received",
    "Upload bytes written to the blob store (/v2/ uploads and UploadLayerPart)",
    registry=REGISTRY,
)
BLOB_BYTES_SENT = Counter(
    "pier_blob_bytes_sent",
    "Blob bytes pier sent in answers to blob GETs (a redirect to object storage sends none)",
    registry=REGISTRY,
)
GC_RUNS = Counter("pier_gc_runs", "Garbage collections run inside the server (gc_interval_seconds)", registry=REGISTRY)
GC_FREED_BYTES = Counter("pier_gc_freed_bytes", "Bytes of blobs those collections freed", registry=REGISTRY)
RATE_LIMITED = Counter(
    "pier_rate_limited", "Requests refused by the per-client rate limits (429 / ThrottlingException)", registry=REGISTRY
)

_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe(door: str, operation: str, status: int, seconds: float) -> None:
    """One answered request. Label values are bounded by the callers (web/exchange.py)."""
    key = (door, operation, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (REQUESTS.labels(door, operation, str(status)), DURATION.labels(door, operation))
    pair[0].inc()
    pair[1].observe(seconds)


class _Scraped(Collector):
    """What is read when scraped rather than counted: the build, and the uploads in progress."""

    def __init__(self, uploads: int | None) -> None:
        self.uploads = uploads

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("pier_build_info", "pier's version (always 1)", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        if self.uploads is not None:
            yield GaugeMetricFamily(
                "pier_uploads_in_progress",
                "Uploads holding acknowledged bytes, not yet finished, in the registry",
                value=self.uploads,
            )


def exposition(uploads: int | None) -> bytes:
    directory = os.environ.get(MULTIPROCESS_ENV)
    registry = CollectorRegistry()
    if directory:
        MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Own())
    registry.register(_Scraped(uploads))
    return generate_latest(registry)


class _Own(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


async def endpoint(request: Request) -> Response:
    """GET /metrics: 404 when metrics are off; with `metrics = token`, 401 without a bearer token and 403
    with another one than metrics_token."""
    config = request.app.state.config
    if config.metrics == "off":
        return JSONResponse({"message": "metrics are off (metrics = off)"}, 404)
    if config.metrics == "token":
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            headers = {"WWW-Authenticate": 'Bearer realm="pier metrics"'}
            return JSONResponse({"message": "send Authorization: Bearer <metrics_token>"}, 401, headers)
        if not hmac.compare_digest(presented.strip().encode(), config.metrics_token.encode()):
            return JSONResponse({"message": "that is not the metrics token"}, 403)
    uploads = await _count_uploads(request.app.state.core)
    body = await run_sync(exposition, uploads)
    return Response(body, headers={"Cache-Control": "no-store", "Content-Type": CONTENT_TYPE_LATEST})


async def _count_uploads(core: Core) -> int | None:
    """The uploads in progress, or None (the gauge is left out) while the database does not answer."""
    try:
        return await asyncio.wait_for(run_sync(core.meta.count_uploads), SCRAPE_TIMEOUT)
    except Exception as failure:
        log.warning("metrics: cannot count uploads in progress: %s", type(failure).__name__)
        return None
