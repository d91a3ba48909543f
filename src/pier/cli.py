"""The `pier` command: flags -> Config -> run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pier import __version__
from pier.config import Config, ConfigError, load

if TYPE_CHECKING:
    from pier.storage.metadata import MetadataStore

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
    serve.add_argument(
        "--workers",
        help='server processes on the one port: a number, or "auto" for one per usable core (the default)',
    )
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

    save = commands.add_parser(
        "backup", help="copy the metadata, then the blobs it records, into DEST (SQLite metadata; safe while serving)"
    )
    save.add_argument("dest", type=Path, help="a folder that is absent or empty")
    save.add_argument(
        "--copy", action="store_true", help="copy blobs even where hard links would do (DEST on the same disk)"
    )

    bring_back = commands.add_parser("restore", help="bring a backup back into a new data dir")
    bring_back.add_argument("src", type=Path, help="a folder pier backup made")
    bring_back.add_argument("--data-dir", type=Path, required=True, help="the new data dir (absent or empty)")

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

    user_commands_all = (create, put_policy, listing, create_key, delete_key, delete)
    for command in (serve, rotate, collect, scrub, save, bring_back, *user_commands_all):
        if command is not bring_back:
            command.add_argument("--data-dir", type=Path, help="where data lives (default ./pier-data)")
        command.add_argument("--config", type=Path, help="a pier.toml file")
        command.add_argument("--database-url", help="SQLAlchemy URL of the metadata database")
        if command not in user_commands_all:  # users live in the metadata database only
            command.add_argument("--blob-store", help="s3://bucket[/prefix] (default: <data-dir>/blobs)")
    args = parser.parse_args(argv)
    if args.command == "restore" and args.data_dir.exists() and any(args.data_dir.iterdir()):
        sys.exit(f"pier: the new data dir {args.data_dir} must be absent or empty")

    try:
        config = load(args.config, flags={key: getattr(args, key, None) for key in CONFIG_FLAGS})
    except ConfigError as error:
        sys.exit(f"pier: {error}")

    if args.command == "rotate-key":
        rotate_key(config, args.revoke_others)
    elif args.command == "gc":
        collect_garbage(config, args.dry_run, args.grace_seconds)
    elif args.command == "backup":
        sys.exit(back_up(config, args.dest, args.copy))
    elif args.command == "restore":
        sys.exit(restore(config, args.src))
    elif args.command == "fsck":
        if args.rate is not None and args.rate <= 0:
            sys.exit("pier: --rate must be a positive number of MiB per second")
        sys.exit(scrub_blobs(config, args.repair, args.rate, args.json, args.grace_seconds))
    elif args.command == "users":
        manage_users(config, args)
    else:
        serve_forever(config)


def serve_forever(config: Config) -> None:
    from pier import cores, logs, rundirs, tls

    # SIGHUP never stops pier: ignored until the server's own handler (a certificate reload) takes over.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.configure(config.log_format, config.log_level)
    certificates = None
    if config.tls:
        try:
            certificates = tls.Certificates(config.tls_cert, config.tls_key, config.data_dir)
        except tls.CertificateError as error:
            sys.exit(f"pier: {error}")
    metrics_dir = workers_dir = None
    if config.workers > 1:
        # Before pier.web.metrics is imported: every worker writes its numbers where /metrics adds them up.
        metrics_dir = rundirs.serve_dir(config.data_dir, "metrics")
        os.environ[rundirs.METRICS_ENV] = str(metrics_dir)
        workers_dir = rundirs.serve_dir(config.data_dir, "workers")  # which are serving, for /readyz
        os.environ[rundirs.WORKERS_ENV] = str(workers_dir)
    from pier.config import save_resolved
    from pier.server import Listen, run, run_workers  # imported late so `pier --help` stays fast

    if missing := config.users_without_secrets():
        sys.exit(f"pier: the secret of user(s) {', '.join(missing)} is not set: set each environment variable named")
    listen = Listen(config.host, config.port, config.log_level, config.drain_timeout, certificates)
    print(banner(config, sys.stdout.isatty()), flush=True)
    try:
        if config.workers == 1:
            from pier.app import create_app

            run(create_app(config), listen)
            return
        resolved = config.data_dir / ".serve-config.json"
        save_resolved(config, resolved)
        if config.secrets_key:
            os.environ["PIER_SECRETS_KEY"] = config.secrets_key  # for the workers: never written to the data dir
        # The parent only supervises: it never imports the app (~70 MiB of SQLAlchemy, boto3, Starlette...).
        # The schema is migrated once, before the workers start, by a child that builds the store as they will.
        env = {k: v for k, v in os.environ.items() if k != rundirs.METRICS_ENV}  # it counts nothing to report
        migrated = subprocess.run([sys.executable, "-m", "pier.app", str(resolved)], env=env, check=False)
        if migrated.returncode != 0:
            sys.exit(f"pier: preparing the store for the workers failed (exit status {migrated.returncode})")
        cpus = cores.worker_cpus(config.workers) if config.worker_cpu_affinity == "auto" else None
        run_workers(resolved, listen, config.workers, cpus)
    finally:
        if certificates is not None:
            certificates.close()
        for serve_dir in (metrics_dir, workers_dir):
            if serve_dir is not None:
                shutil.rmtree(serve_dir, ignore_errors=True)


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


@contextmanager
def _sqlite_copy(path: Path) -> Iterator[MetadataStore]:
    """A backup's or a restore's metadata file, opened as pier opens its own (migrated if older)."""
    from pier.storage.generation import REPOSITORIES_SUFFIX
    from pier.storage.sql import SqlMetadataStore

    store = SqlMetadataStore.from_url(f"sqlite:///{path.resolve()}")
    try:
        yield store
    finally:
        store.close()
        for companion in (".write-lock", REPOSITORIES_SUFFIX):  # pier serve makes its own
            Path(f"{path}{companion}").unlink(missing_ok=True)


def back_up(config: Config, dest: Path, copy: bool) -> int:
    from pier.app import build_core
    from pier.core import backup

    if not config.effective_database_url.startswith("sqlite"):
        print(backup.POSTGRESQL, file=sys.stderr)
        return 2
    core = build_core(config)
    try:
        files = [config.data_dir / "default-account.json", config.effective_audit_log]
        report = backup.backup(core, dest, _sqlite_copy, files, links=not copy)
    except backup.BackupError as error:
        print(f"pier backup: {error}", file=sys.stderr)
        return 2
    finally:
        core.meta.close()  # type: ignore[attr-defined]
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.started_at))
    print(
        f"pier backup: the metadata as of {when}, {report.blobs} blob(s) ({report.bytes} bytes: "
        f"{report.linked} hard link(s), {report.copied} cop(ies) checked against their digests)"
        f"{' and ' + ', '.join(report.files) if report.files else ''} in {dest}"
    )
    for line in report.gone:
        print(f"  freed by GC while the backup ran (an image deleted since needed it), restored as lost: {line}")
    for line in report.damaged:
        print(f"  not backed up, restored as lost: {line}")
    return report.exit_code


def restore(config: Config, src: Path) -> int:
    from pier.app import blob_store
    from pier.core import backup

    url = config.effective_database_url
    if not url.startswith("sqlite:///"):
        print(
            "pier restore brings SQLite metadata back; for PostgreSQL use pg_restore, copy the blobs back, then"
            " run pier fsck (see pier backup's advice)",
            file=sys.stderr,
        )
        return 2
    try:
        report = backup.restore(
            src, Path(url.removeprefix("sqlite:///")), blob_store(config), config.data_dir, _sqlite_copy
        )
    except backup.BackupError as error:
        print(f"pier restore: {error}", file=sys.stderr)
        return 2
    print(
        f"pier restore: {report.blobs} blob(s) ({report.bytes} bytes, each checked against its digest)"
        f"{' and ' + ', '.join(report.files) if report.files else ''} into {config.data_dir}; start it with"
        f" pier serve --data-dir {config.data_dir}"
    )
    for line in report.damaged:
        print(f"  not restored, answers BLOB_UNKNOWN until pushed again: {line}")
    return report.exit_code


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
