"""create_app(config) -> the Starlette app that serves every door on one port.

The only module that names concrete stores. Stores open in the lifespan, so building an app has no
side effects and each test (or worker) gets its own.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc as collector
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from pier import logs, rundirs, serving
from pier.api import dispatch
from pier.config import Config, load_resolved
from pier.core import gc, image_details, uploads
from pier.core.context import Core
from pier.core.downloads import DownloadCounter
from pier.core.pullthrough import Rules
from pier.core.tokens import TokenSigner
from pier.core.users import Directory
from pier.gallery import routes as gallery
from pier.identities import accounts_of, declared_users, secret_box
from pier.oci import routes as oci
from pier.pullthrough import PullThrough
from pier.storage import generation
from pier.storage.blobs import BlobStore
from pier.storage.blobs_fs import FsBlobStore
from pier.storage.blobs_s3 import S3BlobStore
from pier.storage.sql import SqlMetadataStore
from pier.web import metrics
from pier.web import routes as web
from pier.web.admission import BodySlots
from pier.web.audit import AuditLog
from pier.web.bodies import BodyGuard, Requests
from pier.web.exchange import Observe, Routes
from pier.web.failures import FailureLog, LastResort
from pier.web.limits import HeaderLimit
from pier.web.ratelimit import RateLimits
from pier.web.shortcuts import Shortcuts
from pier.web.threads import run_sync

log = logging.getLogger("pier")


def blob_store(config: Config) -> BlobStore:
    if not config.blob_store:
        return FsBlobStore(config.data_dir / "blobs")
    bucket, _, prefix = config.blob_store.removeprefix("s3://").partition("/")
    return S3BlobStore(
        bucket,
        prefix,
        endpoint_url=config.s3_endpoint_url,
        region=config.s3_region,
        access_key_id=config.s3_access_key_id,
        secret_access_key=config.s3_secret_access_key,
        redirects=config.s3_presigned_redirects,
    )


def build_core(config: Config) -> Core:
    meta = SqlMetadataStore.from_url(config.effective_database_url, config.data_dir / generation.FILE_NAME)
    accounts = accounts_of(config)
    return Core(
        meta=meta,
        blobs=blob_store(config),
        accounts=accounts,
        directory=Directory(meta, accounts, declared_users(config), secret_box(config)),
        signer=TokenSigner(meta),
        public_url=config.effective_public_url,
        public_host=config.public_host,
        max_repositories=config.max_repositories,
        max_images=config.max_images_per_repository,
        max_uploads=config.max_uploads_per_repository,
        upload_expiry=config.upload_expiry_seconds,
        downloads=DownloadCounter(config.count_downloads),
        pull_through=Rules.of((a.id, rule) for a in config.accounts for rule in a.pull_through),
    )


async def expire_uploads(core: Core) -> None:
    """Every so often, remove uploads that have been idle past the expiry."""
    interval = min(core.upload_expiry / 4, 600)
    while True:
        await asyncio.sleep(interval)
        try:
            await run_sync(uploads.expire, core)
        except Exception:
            log.exception("expiring uploads failed; trying again later")


async def collect_garbage(core: Core, interval: float, grace: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await run_sync(gc.collect, core, grace)
            metrics.GC_RUNS.inc()
            metrics.GC_FREED_BYTES.inc(report.bytes)
            if report.anything:
                log.info("garbage collection %s", report)
        except Exception:
            log.exception("garbage collection failed; trying again later")


BACKFILL_PAUSE, BACKFILL_EVERY = 0.2, 600.0


async def gather_image_details(core: Core) -> None:
    """Details for images pushed before pier kept them (or whose config could not be read at push time):
    a batch at a time with a pause between, so serving never waits; again every BACKFILL_EVERY seconds."""
    while True:
        after = 0
        try:
            while True:
                after, seen = await run_sync(image_details.backfill, core, after)
                if not seen:
                    break
                await asyncio.sleep(BACKFILL_PAUSE)
        except Exception as error:
            log.warning("gathering image details failed (%s); trying again later", error)
        await asyncio.sleep(BACKFILL_EVERY)


async def flush_downloads(core: Core, interval: float) -> None:
    """Every `interval` seconds, write the downloads counted since the last time."""
    while True:
        await asyncio.sleep(interval)
        await write_downloads(core)


async def write_downloads(core: Core, attempts: int = 1) -> None:
    for _ in range(attempts):
        core.downloads.seal()
        try:
            await run_sync(core.downloads.write, core)
        except Exception as error:
            log.warning("writing %d download count(s) failed (%s); trying again later", core.downloads.unwritten, error)
            return
        if not core.downloads.unwritten:
            return


async def write_last_downloads(core: Core) -> None:
    """At shutdown: what is pending (a batch left from a failure, then the rest), or say what is lost."""
    await write_downloads(core, attempts=3)
    if core.downloads.unwritten:
        log.error("stopping with %d download count(s) unwritten: they are lost", core.downloads.unwritten)


def app_for_worker() -> Starlette:
    """The app factory Granian's worker processes call (`pier serve --workers N`)."""
    _die_with_parent()
    # SIGHUP is for the parent (it reloads the certificate by starting new workers); never stop a worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = load_resolved(Path(os.environ[rundirs.WORKER_CONFIG_ENV]))
    logs.configure(config.log_format, config.log_level)
    return create_app(config)


def _die_with_parent() -> None:
    """Ask Linux to stop this worker when the process that started it dies, even by SIGKILL, so no orphan
    keeps serving (or holding the port) after its parent is gone."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _freeze_what_startup_made() -> None:
    """Out of the cyclic garbage collector's sight: what imports and stores made at startup (~110,000
    objects: modules, classes, SQLAlchemy's tables), which lives as long as the process. Each full
    collection walked all of it, 45-110 ms with every thread of the process stopped: a stall for every
    request in flight there (bench/notes.md). What requests make is collected as before."""
    collector.collect()
    collector.freeze()


def create_app(config: Config) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        core = build_core(config)
        app.state.core = core
        app.state.config = config
        app.state.rate_limits = RateLimits(
            config.rate_limit_anonymous, config.rate_limit_authenticated, config.rate_limit_burst
        )
        app.state.audit = AuditLog(config.effective_audit_log)
        app.state.pull_through = PullThrough(core)
        tasks = [asyncio.create_task(expire_uploads(core)), asyncio.create_task(gather_image_details(core))]
        if config.count_downloads:
            tasks.append(asyncio.create_task(flush_downloads(core, config.downloads_flush_seconds)))
        if config.gc_interval_seconds:
            tasks.append(
                asyncio.create_task(collect_garbage(core, config.gc_interval_seconds, config.gc_grace_seconds))
            )
        _freeze_what_startup_made()
        try:
            serving.mark(config.workers)  # /readyz counts the workers serving (serving.py)
            yield
        finally:
            serving.unmark()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await write_last_downloads(core)  # SIGTERM: nothing counted is left behind
            await app.state.pull_through.close()
            app.state.audit.close()
            core.meta.close()  # type: ignore[attr-defined]

    requests = Requests()
    failures = FailureLog()
    # The route table by door; a route's name is its operation in metrics and request logs.
    doors: dict[str, list[BaseRoute]] = {
        "api": [Route("/", dispatch.handle, methods=["POST"], name="api")],
        "web": [
            Route("/healthz", web.healthz, methods=["GET", "HEAD"], name="healthz"),
            Route("/readyz", web.readyz, methods=["GET", "HEAD"], name="readyz"),
            Route("/metrics", metrics.endpoint, methods=["GET"], name="metrics"),
            Route("/logos/{digest}", web.logo, methods=["GET", "HEAD"], name="logo"),
        ],
        "oci": oci.ROUTES,
        "gallery": gallery.ROUTES,  # last: /<alias> takes whatever else is left
    }
    app = Starlette(
        routes=[route for routes in doors.values() for route in routes],
        lifespan=lifespan,
        middleware=[
            Middleware(Observe, routes=Routes(doors)),  # outermost: sees every answer, as sent
            Middleware(LastResort, failures=failures),
            Middleware(HeaderLimit),
            Middleware(BodyGuard, body_timeout=config.body_timeout, requests=requests),
            Middleware(Shortcuts, routes=oci.SHORTCUTS),  # innermost: /v2/ and /token, without the router
        ],
    )
    app.state.requests = requests  # the server ends their bodies when a stop has waited long enough
    app.state.config = config
    app.state.failures = failures
    app.state.body_slots = BodySlots(config.max_upload_bodies_per_account, config.max_upload_bodies_per_client)
    return app


def prepare_for_workers(resolved: Path) -> None:
    """Open the stores once as the workers will (migrating the schema), and close them: run by `pier serve
    --workers N` in a child process before the workers start, so the parent never loads the app."""
    config = load_resolved(resolved)
    logs.configure(config.log_format, config.log_level)
    build_core(config).meta.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    prepare_for_workers(Path(sys.argv[1]))
