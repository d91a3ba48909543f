"""The `pier` command: flags -> Config -> run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pier import __version__
from pier.config import Config, ConfigError, load


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pier", description="A registry compatible with Amazon ECR Public.")
    parser.add_argument("--version", action="version", version=f"pier {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API, /v2/, /token, the gallery and /healthz")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 5000)")
    serve.add_argument("--data-dir", type=Path, help="where data lives (default ./pier-data)")
    serve.add_argument("--config", type=Path, help="a pier.toml file")
    serve.add_argument("--public-url", help="the URL clients use (default http://<host>:<port>)")
    serve.add_argument("--database-url", help="SQLAlchemy URL of the metadata database")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    try:
        config = load(
            args.config,
            flags={
                "host": args.host,
                "port": args.port,
                "data_dir": args.data_dir,
                "public_url": args.public_url,
                "database_url": args.database_url,
                "log_level": args.log_level,
            },
        )
    except ConfigError as error:
        sys.exit(f"pier: {error}")

    from pier.app import create_app  # imported late so `pier --help` stays fast
    from pier.server import run

    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(banner(config), flush=True)
    run(create_app(config), config.host, config.port, config.log_level)


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
