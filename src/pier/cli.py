"""The `pier` command: flags -> Config -> run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pier import __version__
from pier.config import Config, ConfigError, load

# Flags that map 1:1 onto Config fields (None: not given, so pier.toml or PIER_* decide).
CONFIG_FLAGS = (
    "host",
    "port",
    "data_dir",
    "public_url",
    "database_url",
    "log_level",
    "blob_store",
    "workers",
    "body_timeout",
    "drain_timeout",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pier", description="A registry compatible with Amazon ECR Public.")
    parser.add_argument("--version", action="version", version=f"pier {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API, /v2/, /token, the gallery and /healthz")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 5000)")
    serve.add_argument("--public-url", help="the URL clients use (default http://<host>:<port>)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--workers", type=int, help="server processes on the one port (default 1)")
    serve.add_argument(
        "--body-timeout", type=float, help="seconds a request body may send nothing before it is ended (default 60)"
    )
    serve.add_argument(
        "--drain-timeout", type=float, help="seconds requests in flight get to finish after SIGTERM (default 30)"
    )

    rotate = commands.add_parser("rotate-key", help="sign tokens with a new key (old tokens stay valid until expiry)")
    rotate.add_argument("--revoke-others", action="store_true", help="also invalidate every token signed before")

    collect = commands.add_parser(
        "gc", help="free the blobs no image uses any more, and what crashes left behind (safe while serving)"
    )
    collect.add_argument("--dry-run", action="store_true", help="only report what would be freed or removed")
    collect.add_argument(
        "--grace-seconds", type=int, help="spare blobs and files touched this recently (default: config)"
    )

    scrub = commands.add_parser(
        "fsck",
        help="check that every blob is stored, whole and hashes to its digest; list leftovers (safe while serving)",
    )
    scrub.add_argument(
        "--repair",
        action="store_true",
        help="quarantine corrupt blobs and forget missing ones (they are pushed again), remove old leftovers",
    )
    scrub.add_argument("--rate", type=float, metavar="MiB/s", help="read blobs at most this fast (default: no limit)")
    scrub.add_argument("--json", action="store_true", help="print one JSON document instead of a summary")
    scrub.add_argument(
        "--grace-seconds", type=int, help="leftovers younger than this are writes in progress (default: config)"
    )

    for command in (serve, rotate, collect, scrub):
        command.add_argument("--data-dir", type=Path, help="where data lives (default ./pier-data)")
        command.add_argument("--config", type=Path, help="a pier.toml file")
        command.add_argument("--database-url", help="SQLAlchemy URL of the metadata database")
        command.add_argument("--blob-store", help="s3://bucket[/prefix] (default: <data-dir>/blobs)")
    args = parser.parse_args(argv)

    try:
        config = load(args.config, flags={key: getattr(args, key, None) for key in CONFIG_FLAGS})
    except ConfigError as error:
        sys.exit(f"pier: {error}")

    if args.command == "rotate-key":
        rotate_key(config, args.revoke_others)
    elif args.command == "gc":
        collect_garbage(config, args.dry_run, args.grace_seconds)
    elif args.command == "fsck":
        if args.rate is not None and args.rate <= 0:
            sys.exit("pier: --rate must be a positive number of MiB per second")
        sys.exit(scrub_blobs(config, args.repair, args.rate, args.json, args.grace_seconds))
    else:
        serve_forever(config)


def serve_forever(config: Config) -> None:
    from pier.app import build_core, create_app  # imported late so `pier --help` stays fast
    from pier.config import save_resolved
    from pier.server import run, run_workers

    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(banner(config), flush=True)
    if config.workers == 1:
        run(create_app(config), config.host, config.port, config.log_level, config.drain_timeout)
        return
    build_core(config).meta.close()  # type: ignore[attr-defined]  # migrate once, before the workers start
    resolved = config.data_dir / ".serve-config.json"
    save_resolved(config, resolved)
    run_workers(resolved, config.host, config.port, config.log_level, config.workers, config.drain_timeout)


def collect_garbage(config: Config, dry_run: bool, grace_seconds: int | None) -> None:
    from pier.app import build_core
    from pier.core import gc

    core = build_core(config)
    try:
        grace = config.gc_grace_seconds if grace_seconds is None else grace_seconds
        print(f"pier gc: {gc.collect(core, grace, dry_run)}")
    finally:
        core.meta.close()  # type: ignore[attr-defined]


def scrub_blobs(config: Config, repair: bool, rate: float | None, as_json: bool, grace_seconds: int | None) -> int:
    import json

    from pier.app import build_core
    from pier.core import fsck

    core = build_core(config)
    try:
        grace = config.gc_grace_seconds if grace_seconds is None else grace_seconds
        report = fsck.check(core, repair=repair, rate=rate * fsck.MIB if rate else None, grace_seconds=grace)
    finally:
        core.meta.close()  # type: ignore[attr-defined]
    print(json.dumps(report.to_json(), indent=2) if as_json else report, flush=True)
    return report.exit_code


def rotate_key(config: Config, revoke_others: bool) -> None:
    from pier.core.tokens import TokenSigner
    from pier.storage.sql import SqlMetadataStore

    store = SqlMetadataStore.from_url(config.effective_database_url)
    try:
        key_id = TokenSigner(store).rotate(revoke_others)
    finally:
        store.close()
    revoked = "; tokens signed with older keys no longer verify" if revoke_others else ""
    print(f"pier signs tokens with key {key_id} now{revoked}")


def banner(config: Config) -> str:
    account = config.default_account
    url = config.effective_public_url
    login = (
        f"aws ecr-public get-login-password --endpoint-url {url} --region us-east-1 | "
        f"docker login --username AWS --password-stdin {config.public_host}"
    )
    return "\n".join(
        [
            f"pier {__version__} serving on {url}",
            f"  data dir:          {config.data_dir.resolve()}",
            f"  account:           {account.id} (alias {account.alias})",
            f"  access key id:     {account.access_key_id}",
            f"  secret access key: {account.secret_access_key}",
            "  use it:",
            f"    export AWS_ACCESS_KEY_ID={account.access_key_id} AWS_SECRET_ACCESS_KEY={account.secret_access_key}",
            f"    aws ecr-public create-repository --repository-name hello --endpoint-url {url} --region us-east-1",
            f"    {login}",
            f"    docker push {config.public_host}/{account.alias}/hello:latest",
        ]
    )
