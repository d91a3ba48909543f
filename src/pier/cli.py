"""The `pier` command: flags -> Config -> run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

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

    users = commands.add_parser(
        "users",
        help="IAM users of an account: access keys and identity policies (every pier process applies a change "
        f"within {REVOCATION_BOUND} s)",
    )
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    create = user_commands.add_parser("create", help="create a user with an access key (its secret is shown once)")
    create.add_argument("--policy", type=Path, metavar="FILE", help="its identity policy (JSON)")
    put_policy = user_commands.add_parser("put-policy", help="set a user's identity policy (JSON; - reads stdin)")
    listing = user_commands.add_parser("list", help="the account's users: names, ARNs, access key ids (no secrets)")
    create_key = user_commands.add_parser("create-key", help="a new access key for a user (at most two each)")
    delete_key = user_commands.add_parser("delete-key", help="delete one of a user's access keys")
    delete = user_commands.add_parser("delete", help="delete a user and its access keys")
    for command in (create, put_policy, listing, create_key, delete_key, delete):
        command.add_argument("account", metavar="ACCOUNT", help="the account id (12 digits)")
        if command is not listing:
            command.add_argument("name", metavar="NAME", help="the user's name")
    put_policy.add_argument("policy_file", metavar="FILE", help="the identity policy (JSON), or - for stdin")
    delete_key.add_argument("key_id", metavar="KEY_ID", help="the access key id")
    for command in (create, listing, create_key):
        command.add_argument("--json", action="store_true", help="print JSON")

    for command in (serve, rotate, collect, create, put_policy, listing, create_key, delete_key, delete):
        command.add_argument("--data-dir", type=Path, help="where data lives (default ./pier-data)")
        command.add_argument("--config", type=Path, help="a pier.toml file")
        command.add_argument("--database-url", help="SQLAlchemy URL of the metadata database")
        if command in (serve, rotate, collect):
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
    elif args.command == "users":
        manage_users(config, args)
    else:
        serve_forever(config)


def serve_forever(config: Config) -> None:
    from pier.app import build_core, create_app  # imported late so `pier --help` stays fast
    from pier.config import save_resolved
    from pier.server import run, run_workers

    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if missing := config.users_without_secrets():
        sys.exit(f"pier: the secret of user(s) {', '.join(missing)} is not set: set each environment variable named")
    print(banner(config), flush=True)
    if config.workers == 1:
        run(create_app(config), config.host, config.port, config.log_level, config.drain_timeout)
        return
    build_core(config).meta.close()  # type: ignore[attr-defined]  # migrate once, before the workers start
    resolved = config.data_dir / ".serve-config.json"
    save_resolved(config, resolved)
    if config.secrets_key:
        os.environ["PIER_SECRETS_KEY"] = config.secrets_key  # for the workers: never written to the data dir
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


REVOCATION_BOUND = 10  # seconds; core/users.py MAX_AGE_SECONDS


def manage_users(config: Config, args: argparse.Namespace) -> None:
    """`pier users ...` against the metadata database (never the users pier.toml declares)."""
    from pier import errors
    from pier.core.users import UserAdmin
    from pier.identities import accounts_of, declared_users, secret_box
    from pier.storage.sql import SqlMetadataStore

    command = args.users_command
    policy_text = None
    source = args.policy if command == "create" else Path(args.policy_file) if command == "put-policy" else None
    if source is not None:
        try:
            policy_text = sys.stdin.read() if str(source) == "-" else source.read_text()
        except OSError as error:
            sys.exit(f"pier users: cannot read the policy {source}: {error}")
    store = SqlMetadataStore.from_url(config.effective_database_url)
    try:
        admin = UserAdmin(store, accounts_of(config), declared_users(config), secret_box(config))
        account, name = args.account, getattr(args, "name", "")
        if command == "create":
            user, key = admin.create(account, name, policy_text)
            _print_key(args.json, {"arn": user.arn, **_key_fields(key)}, f"created {user.arn}")
        elif command == "put-policy":
            assert policy_text is not None
            admin.put_policy(account, name, policy_text)
            print(
                f"pier users: set the identity policy of {name}; every pier process applies it within "
                f"{REVOCATION_BOUND} s"
            )
        elif command == "list":
            _print_users(args.json, admin.list(account))
        elif command == "create-key":
            _print_key(args.json, _key_fields(admin.create_key(account, name)), f"created an access key for {name}")
        elif command == "delete-key":
            admin.delete_key(account, name, args.key_id)
            print(
                f"pier users: deleted access key {args.key_id} of {name}; it stops working in every pier "
                f"process within {REVOCATION_BOUND} s"
            )
        else:
            admin.delete(account, name)
            print(
                f"pier users: deleted {name} and its access keys; they stop working in every pier process "
                f"within {REVOCATION_BOUND} s"
            )
    except errors.PierError as error:
        sys.exit(f"pier users: {error}")
    finally:
        store.close()


def _key_fields(key: Any) -> dict[str, str]:
    return {"accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key}


def _print_key(as_json: bool, fields: dict[str, str], what: str) -> None:
    if as_json:
        print(json.dumps(fields))
        return
    print(f"pier users: {what}")
    print(f"  access key id:     {fields['accessKeyId']}")
    print(f"  secret access key: {fields['secretAccessKey']}")
    print("  (the secret is shown this once: keep it now)")


def _print_users(as_json: bool, users: list[Any]) -> None:
    rows = [
        {
            "name": u.name,
            "arn": u.arn,
            "userId": u.user_id,
            "accessKeyIds": list(u.key_ids),
            "source": "pier.toml" if u.declared else "database",
        }
        for u in users
    ]
    if as_json:
        print(json.dumps({"users": rows}))
        return
    for row in rows:
        print(f"{row['name']}\t{row['arn']}\t{','.join(row['accessKeyIds']) or '-'}\t{row['source']}")


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
