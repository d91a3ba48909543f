"""The `pier` command: flags -> Config -> run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
    "tls_cert",
    "tls_key",
    "metrics",
    "log_format",
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
    serve.add_argument(
        "--log-format", choices=["text", "json"], help="log lines on stderr: text, or one JSON object a line"
    )
    serve.add_argument("--tls-cert", help="serve TLS: a PEM certificate file (its chain may follow it)")
    serve.add_argument("--tls-key", help="the certificate's PEM private key file")
    serve.add_argument(
        "--metrics",
        choices=["on", "off", "token"],
        help="GET /metrics: on (default), off, or token (needs Authorization: Bearer <metrics_token>)",
    )
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

    for command in (serve, rotate, collect):
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
    else:
        serve_forever(config)


def serve_forever(config: Config) -> None:
    from pier import logs, rundirs, tls

    # SIGHUP never stops pier: ignored until the server's own handler (a certificate reload) takes over.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.configure(config.log_format, config.log_level)
    certificates = None
    if config.tls:
        try:
            certificates = tls.Certificates(config.tls_cert, config.tls_key, config.data_dir)
        except tls.CertificateError as error:
            sys.exit(f"pier: {error}")
    metrics_dir = None
    if config.workers > 1:
        # Before pier.web.metrics is imported: every worker writes its numbers where /metrics adds them up.
        metrics_dir = rundirs.serve_dir(config.data_dir, "metrics")
        os.environ[rundirs.METRICS_ENV] = str(metrics_dir)
    from pier.app import build_core, create_app  # imported late so `pier --help` stays fast
    from pier.config import save_resolved
    from pier.server import Listen, run, run_workers

    listen = Listen(config.host, config.port, config.log_level, config.drain_timeout, certificates)
    print(banner(config, sys.stdout.isatty()), flush=True)
    try:
        if config.workers == 1:
            run(create_app(config), listen)
            return
        build_core(config).meta.close()  # type: ignore[attr-defined]  # migrate once, before the workers start
        resolved = config.data_dir / ".serve-config.json"
        save_resolved(config, resolved)
        run_workers(resolved, listen, config.workers)
    finally:
        if certificates is not None:
            certificates.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def collect_garbage(config: Config, dry_run: bool, grace_seconds: int | None) -> None:
    from pier.app import build_core
    from pier.core import gc

    core = build_core(config)
    try:
        grace = config.gc_grace_seconds if grace_seconds is None else grace_seconds
        print(f"pier gc: {gc.collect(core, grace, dry_run)}")
    finally:
        core.meta.close()  # type: ignore[attr-defined]


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


def banner(config: Config, terminal: bool) -> str:
    """What to run against this pier. The secret access key is printed only to a terminal; anywhere else
    (a log file, a journal) the banner names where it is kept instead."""
    account = config.default_account
    url = config.effective_public_url
    login = (
        f"aws ecr-public get-login-password --endpoint-url {url} --region us-east-1 | "
        f"docker login --username AWS --password-stdin {config.public_host}"
    )
    if terminal:
        secret = shown = account.secret_access_key
    else:
        secret = f"(not shown: it is in {_where_the_secret_is(config)})"
        shown = "<secret access key>"
    return "\n".join(
        [
            f"pier {__version__} serving on {url}",
            f"  data dir:          {config.data_dir.resolve()}",
            f"  account:           {account.id} (alias {account.alias})",
            f"  access key id:     {account.access_key_id}",
            f"  secret access key: {secret}",
            "  use it:",
            f"    export AWS_ACCESS_KEY_ID={account.access_key_id} AWS_SECRET_ACCESS_KEY={shown}",
            f"    aws ecr-public create-repository --repository-name hello --endpoint-url {url} --region us-east-1",
            f"    {login}",
            f"    docker push {config.public_host}/{account.alias}/hello:latest",
        ]
    )


def _where_the_secret_is(config: Config) -> str:
    """The file that holds the default account's secret, or the variable it came from."""
    path = config.data_dir.resolve() / "default-account.json"
    try:
        stored = json.loads(path.read_text()).get("secret_access_key")
    except (OSError, ValueError):
        stored = None
    return str(path) if stored == config.default_account.secret_access_key else "PIER_SECRET_ACCESS_KEY"
