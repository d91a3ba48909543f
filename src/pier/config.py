"""pier's configuration: one frozen tree, loaded once.

Precedence, lowest first: the defaults declared here < pier.toml < PIER_* environment variables <
command-line flags. Unknown keys in pier.toml are errors, so a typo never silently does nothing.

The default account comes from PIER_ACCOUNT_ID, PIER_ALIAS, PIER_ACCESS_KEY_ID and
PIER_SECRET_ACCESS_KEY. Whatever is left unset is generated on first start and kept in
``<data-dir>/default-account.json`` (mode 0600), so the same credentials work after a restart.
More accounts come from ``[[accounts]]`` tables in pier.toml. Pull-through cache rules come from
``[[pull_through]]`` tables (the default account's) and ``[[accounts.pull_through]]`` (another's); their
credentials are the names of environment variables, which must be set when pier starts.

IAM users may be declared too: ``[[users]]`` (of the default account) and ``[[accounts.users]]`` (inside
an ``[[accounts]]`` table), each with ``name``, ``access_key_id``, ``secret_access_key_env`` (the name of
the environment variable holding its secret) and ``policy`` (the JSON text) or ``policy_file`` (a path,
relative to pier.toml's folder). PIER_SECRETS_KEY (or ``secrets_key``) seals the secrets of the users
`pier users` creates in the database; it is never written into the data dir.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pier import cores
from pier.core import limits, policies
from pier.core import secrets as sealing
from pier.core.pullthrough import DEFAULT_TAG_TTL_SECONDS, Credentials, Rule

DOWNLOADS_FLUSH_MAX = 10.0  # seconds: the most a download count may lag (documented)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class AccountConfig:
    id: str  # 12 digits, the registryId
    alias: str  # the registry alias: repositoryUri is <host>/<alias>/<name>
    access_key_id: str
    secret_access_key: str
    # Optional: when set, SigV4 requests must carry this X-Amz-Security-Token.
    session_token: str | None = None
    # The gallery marks a verified publisher with a badge (as ECR Public marks verified accounts). Only the
    # operator sets it, here; nothing in the API can.
    verified: bool = False
    # Pull-through cache rules of this account's registry: [[pull_through]] for the default account,
    # [[accounts.pull_through]] inside an [[accounts]] table for another.
    pull_through: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if not limits.ACCOUNT_ID.fullmatch(self.id):
            raise ConfigError(f"account id {self.id!r} must be 12 digits")
        if self.alias in limits.RESERVED_ALIASES:
            raise ConfigError(f"alias {self.alias!r} is a path pier serves itself; choose another")
        if not limits.is_alias(self.alias):
            raise ConfigError(
                f"alias {self.alias!r} must be 2-50 characters of lowercase letters, digits and . _ -, "
                "starting with a letter"
            )
        if not self.access_key_id or not self.access_key_id.isalnum() or len(self.access_key_id) > 128:
            raise ConfigError(f"access_key_id of account {self.id} must be 1-128 letters and digits")
        if len(self.secret_access_key) < 16:
            raise ConfigError(f"secret_access_key of account {self.id} must be at least 16 characters")


USER_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")  # IAM's user names
ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]{16,128}")  # IAM's access key ids


@dataclass(frozen=True)
class UserConfig:
    """An IAM user pier.toml declares ([[users]] or [[accounts.users]])."""

    account_id: str
    name: str
    access_key_id: str
    secret_access_key_env: str  # the environment variable that holds its secret
    # Read from that variable at load; None when it is not set (`pier serve` then refuses to start).
    secret_access_key: str | None = field(default=None, repr=False)
    policy_text: str | None = None  # its identity policy


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"  # address to listen on
    port: int = 5000  # port for everything: API, /v2/, /token, gallery, /healthz
    data_dir: Path = Path("./pier-data")  # SQLite file, blobs, keys, generated credentials
    # The URL clients use to reach pier; repositoryUri and token realms are built from it.
    # Default: http://<host>:<port>.
    public_url: str = ""
    # SQLAlchemy URL of the metadata database. Default: SQLite at <data-dir>/pier.db.
    database_url: str = ""
    # Where blobs live: "" for <data-dir>/blobs, or s3://bucket[/prefix] for S3-compatible storage.
    blob_store: str = ""
    s3_endpoint_url: str = ""  # for S3-compatible stores (MinIO, Ceph, ...); "" for AWS
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""  # "" to use boto3's usual credential chain
    s3_secret_access_key: str = ""
    s3_presigned_redirects: bool = True  # send pulls to presigned URLs; false streams through pier
    # Quota of repositories in one registry (ECR Public's default).
    max_repositories: int = limits.REPOSITORIES_PER_REGISTRY
    # Quota of images in one repository (ECR Public's default).
    max_images_per_repository: int = limits.IMAGES_PER_REPOSITORY
    log_level: str = "info"  # debug, info, warning, error
    # Server processes on the one port (1: everything in this process). Each is a full pier; they share
    # the database and blob store like separate `pier serve` processes would. "auto", the default: one per
    # usable core (affinity and cgroup CPU quota, see cores.py), resolved to a number when the config is read.
    workers: int = field(default_factory=cores.usable_cores)
    # "auto": with as many workers as the CPUs pier may run on, each worker (all its threads) keeps to one
    # CPU of its own, which saves the cost of waking threads across CPUs (cores.py); "off": the kernel
    # places them as it likes.
    worker_cpu_affinity: str = "auto"
    # Requests per second per client address (a burst of rate_limit_burst is allowed). 0 turns a limit
    # off, the default for local use. ECR Public allows anonymous clients 1 pull/s, logged-in ones 10.
    # Counted: manifest, tag and referrer reads, token requests, API calls (blob downloads are not).
    rate_limit_anonymous: float = 0.0
    rate_limit_authenticated: float = 0.0
    rate_limit_burst: int = 20
    # Uploads in progress at once in one repository, and how long an idle one is kept.
    max_uploads_per_repository: int = limits.UPLOADS_PER_REPOSITORY
    upload_expiry_seconds: int = limits.UPLOAD_EXPIRY_SECONDS
    # Lifetime of the bearer tokens /token issues.
    token_ttl_seconds: int = 3600
    # Garbage collection: blobs no image uses are freed once untouched this long (never sooner, so a
    # push in progress keeps its blobs), by `pier gc` or every gc_interval_seconds (0: not in the server).
    gc_grace_seconds: int = 6 * 3600
    gc_interval_seconds: int = 0
    # JSON lines, one per mutating call (who, what, result). Default: <data-dir>/audit.log.
    audit_log: str = ""
    # A request body that sends nothing for this many seconds ends its request (408); the upload keeps
    # what was acknowledged. Idle time: a slow body that keeps sending is never cut.
    body_timeout: float = 60.0
    # On SIGTERM: stop accepting, let requests in flight finish for up to this many seconds, end the rest.
    drain_timeout: float = 30.0
    # Upload bodies in flight at once, per account and per client address (past either: 429, retry later).
    max_upload_bodies_per_account: int = 400
    max_upload_bodies_per_client: int = 100
    # /readyz says the disk has room while at least this many bytes are free where data is written.
    readiness_min_free_bytes: int = 64 * 1024 * 1024
    # TLS on the one port: a PEM certificate (its chain may follow it in the same file) and its PEM key.
    # With them the default public URL is https://<host>:<port>. SIGHUP reloads both.
    tls_cert: str = ""
    tls_key: str = ""
    # GET /metrics (Prometheus): "on", "off" (404) or "token" (Authorization: Bearer <metrics_token>).
    metrics: str = "on"
    metrics_token: str = ""
    # Log lines on stderr, one per request and one per event: "text" for people, "json" for machines.
    log_format: str = "text"
    # Seals users' secret access keys in the database (32 bytes, base64); "" keeps them unsealed.
    secrets_key: str = field(default="", repr=False)
    # Downloads (manifest GETs on /v2/) are counted in memory and written every this many seconds (at most
    # 10, so a count lags by at most 10 s); SIGTERM writes what is pending. count_downloads = false: no counting.
    count_downloads: bool = True
    downloads_flush_seconds: float = 5.0
    # The default account's publisher is verified (a badge in the gallery); [[accounts]] say it themselves.
    verified: bool = False
    accounts: tuple[AccountConfig, ...] = field(default=())  # the default account first
    users: tuple[UserConfig, ...] = field(default=())  # declared in pier.toml

    @property
    def public_host(self) -> str:
        """host[:port] as it appears in repositoryUri and image references."""
        return urlsplit(self.effective_public_url).netloc

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'pier.db').resolve()}"

    @property
    def effective_audit_log(self) -> Path:
        return Path(self.audit_log) if self.audit_log else self.data_dir / "audit.log"

    @property
    def default_account(self) -> AccountConfig:
        return self.accounts[0]

    def users_without_secrets(self) -> list[str]:
        """Declared users whose secret's environment variable is not set: '<name> (<variable>)'."""
        return [f"{u.name} ({u.secret_access_key_env})" for u in self.users if u.secret_access_key is None]


# Keys accepted at the top level of pier.toml, and their PIER_* environment variables.
_SCALARS = {
    "host": str,
    "port": int,
    "data_dir": Path,
    "public_url": str,
    "database_url": str,
    "max_repositories": int,
    "max_images_per_repository": int,
    "log_level": str,
    "rate_limit_anonymous": float,
    "rate_limit_authenticated": float,
    "rate_limit_burst": int,
    "max_uploads_per_repository": int,
    "upload_expiry_seconds": int,
    "token_ttl_seconds": int,
    "audit_log": str,
    "body_timeout": float,
    "drain_timeout": float,
    "max_upload_bodies_per_account": int,
    "max_upload_bodies_per_client": int,
    "readiness_min_free_bytes": int,
    "workers": int,
    "worker_cpu_affinity": str,
    "gc_grace_seconds": int,
    "gc_interval_seconds": int,
    "blob_store": str,
    "s3_endpoint_url": str,
    "s3_region": str,
    "s3_access_key_id": str,
    "s3_secret_access_key": str,
    "s3_presigned_redirects": bool,
    "tls_cert": str,
    "tls_key": str,
    "metrics": str,
    "metrics_token": str,
    "log_format": str,
    "secrets_key": str,
    "count_downloads": bool,
    "downloads_flush_seconds": float,
    "verified": bool,
}
_ENV_PREFIX = "PIER_"
_DEFAULT_ACCOUNT_ENV = {
    "id": "PIER_ACCOUNT_ID",
    "alias": "PIER_ALIAS",
    "access_key_id": "PIER_ACCESS_KEY_ID",
    "secret_access_key": "PIER_SECRET_ACCESS_KEY",
    "session_token": "PIER_SESSION_TOKEN",
}
_ACCOUNT_KEYS = {f.name for f in fields(AccountConfig)}
_USER_KEYS = {"name", "access_key_id", "secret_access_key_env", "policy", "policy_file"}
_RULE_KEYS = {f.name for f in fields(Rule)}
_CREDENTIAL_KEYS = {f.name for f in fields(Credentials)}


def load(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """Build the Config from pier.toml, the environment and flags (None flags are not given).

    Creates the data dir and the default account's credentials file if they do not exist yet.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    extra_accounts: list[dict[str, Any]] = []
    user_tables: list[dict[str, Any]] = []
    rules: list[Any] = []
    if config_file is not None:
        values, extra_accounts, user_tables, rules = _read_toml(config_file)
    for key, kind in _SCALARS.items():
        if (raw := env.get(_ENV_PREFIX + key.upper())) is not None:
            values[key] = _convert(key, raw, kind)
    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = _convert(key, value, _SCALARS[key])
    config = replace(Config(), **values)
    _check(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    default = replace(_default_account(config.data_dir, env), verified=config.verified)
    default = replace(default, pull_through=_rules(rules, "[[pull_through]]", env))
    accounts = (default, *(_account(table, env) for table in extra_accounts))
    _check_unique(accounts)
    base = config_file.parent if config_file is not None else Path.cwd()
    users = [_user(default.id, table, env, base) for table in user_tables]
    for account, table in zip(accounts[1:], extra_accounts, strict=True):
        users += [_user(account.id, user, env, base) for user in table.get("users", [])]
    _check_users(accounts, users)
    return replace(config, accounts=accounts, users=tuple(users))


def save_resolved(config: Config, path: Path) -> None:
    """The whole resolved config (accounts and users included) for worker processes, readable by the owner
    only; all but secrets_key, which workers take from PIER_SECRETS_KEY (a key kept beside the data it
    seals would seal nothing)."""
    values = {f.name: getattr(config, f.name) for f in fields(Config) if f.name != "secrets_key"}
    values["data_dir"] = str(config.data_dir)
    values["accounts"] = [asdict(a) for a in config.accounts]
    values["users"] = [{f.name: getattr(u, f.name) for f in fields(UserConfig)} for u in config.users]
    _write_private(path, json.dumps(values))


def load_resolved(path: Path, env: Mapping[str, str] | None = None) -> Config:
    values = json.loads(path.read_text())
    accounts = tuple(
        AccountConfig(**{**a, "pull_through": tuple(_resolved_rule(r) for r in a["pull_through"])})
        for a in values.pop("accounts")
    )
    users = tuple(UserConfig(**u) for u in values.pop("users"))
    secrets_key = (os.environ if env is None else env).get(_ENV_PREFIX + "SECRETS_KEY", "")
    return replace(
        Config(),
        **{**values, "data_dir": Path(values["data_dir"]), "accounts": accounts, "users": users},
        secrets_key=secrets_key,
    )


def _resolved_rule(values: dict[str, Any]) -> Rule:
    credentials = values.get("credentials")
    return Rule(**{**values, "credentials": Credentials(**credentials) if credentials else None})


def _read_toml(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    accounts = data.pop("accounts", [])
    if not _tables(accounts):
        raise ConfigError(f"{path}: 'accounts' must be [[accounts]] tables")
    users = data.pop("users", [])
    if not _tables(users) or not all(_tables(a.get("users", [])) for a in accounts):
        raise ConfigError(f"{path}: 'users' must be [[users]] (or [[accounts.users]]) tables")
    rules = data.pop("pull_through", [])
    unknown = set(data) - set(_SCALARS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    return {k: _convert(k, v, _SCALARS[k]) for k, v in data.items()}, accounts, users, rules


def _tables(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _convert(key: str, value: Any, kind: type) -> Any:
    if key == "workers" and isinstance(value, str) and value.strip().lower() == "auto":
        return cores.usable_cores()
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int and isinstance(value, bool):
            raise TypeError
        return kind(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{key}: {value!r} is not a valid {kind.__name__}") from error


def _check(config: Config) -> None:
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"port {config.port} is out of range")
    if config.max_repositories < 1 or config.max_images_per_repository < 1:
        raise ConfigError("max_repositories and max_images_per_repository must be at least 1")
    for key in (
        "workers",
        "rate_limit_burst",
        "max_uploads_per_repository",
        "upload_expiry_seconds",
        "token_ttl_seconds",
        "max_upload_bodies_per_account",
        "max_upload_bodies_per_client",
    ):
        if getattr(config, key) < 1:
            raise ConfigError(f"{key} must be at least 1")
    if config.body_timeout <= 0 or config.drain_timeout < 0:
        raise ConfigError("body_timeout must be positive and drain_timeout must not be negative")
    if not 0 < config.downloads_flush_seconds <= DOWNLOADS_FLUSH_MAX:
        raise ConfigError(f"downloads_flush_seconds must be more than 0 and at most {DOWNLOADS_FLUSH_MAX:g}")
    if config.readiness_min_free_bytes < 0:
        raise ConfigError("readiness_min_free_bytes must not be negative")
    if config.gc_grace_seconds < 0 or config.gc_interval_seconds < 0:
        raise ConfigError("gc_grace_seconds and gc_interval_seconds must not be negative")
    if config.rate_limit_anonymous < 0 or config.rate_limit_authenticated < 0:
        raise ConfigError("rate limits must be 0 (off) or positive")
    if config.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log_level must be debug, info, warning or error")
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("tls_cert and tls_key go together: give both (PEM files) or neither")
    if config.metrics not in ("on", "off", "token"):
        raise ConfigError("metrics must be on, off or token")
    if config.metrics == "token" and len(config.metrics_token) < 16:
        raise ConfigError("metrics = token needs a metrics_token (or PIER_METRICS_TOKEN) of at least 16 characters")
    if config.worker_cpu_affinity not in ("auto", "off"):
        raise ConfigError("worker_cpu_affinity must be auto or off")
    if config.log_format not in ("text", "json"):
        raise ConfigError("log_format must be text or json")
    if config.blob_store and not config.blob_store.startswith("s3://"):
        raise ConfigError(f"blob_store {config.blob_store!r} must be empty (the data dir) or s3://bucket[/prefix]")
    if config.secrets_key:
        try:
            sealing.parse_key(config.secrets_key)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    if config.public_url:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ConfigError(f"public_url {config.public_url!r} must be http(s)://host[:port]")


def _account(table: Mapping[str, Any], env: Mapping[str, str]) -> AccountConfig:
    table = {k: v for k, v in table.items() if k != "users"}
    unknown = set(table) - _ACCOUNT_KEYS
    missing = {"id", "alias", "access_key_id", "secret_access_key"} - set(table)
    problems = [f"unknown key(s) {sorted(unknown)}"] if unknown else []
    problems += [f"missing key(s) {sorted(missing)}"] if missing else []
    if problems:
        raise ConfigError(f"[[accounts]] {table.get('id', '?')}: " + "; ".join(problems))
    values: dict[str, Any] = {k: str(v) for k, v in table.items() if k not in ("verified", "pull_through")}
    if "verified" in table:
        values["verified"] = _convert(f"[[accounts]] {table['id']}: verified", table["verified"], bool)
    rules = _rules(table.get("pull_through", []), f"[[accounts.pull_through]] of account {values['id']}", env)
    return AccountConfig(**values, pull_through=rules)


def _rules(tables: Any, where: str, env: Mapping[str, str]) -> tuple[Rule, ...]:
    """One account's pull-through cache rules, checked: prefixes that do not overlap, upstream URLs, and
    credentials whose environment variables are set (their values are read where they are used)."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where} must be tables")
    rules = tuple(_rule(table, where, env) for table in tables)
    for rule in rules:
        for other in rules:
            if other is not rule and (other.prefix == rule.prefix or other.prefix.startswith(rule.prefix + "/")):
                raise ConfigError(f"{where}: the prefixes {rule.prefix!r} and {other.prefix!r} overlap")
    return rules


def _rule(table: Mapping[str, Any], where: str, env: Mapping[str, str]) -> Rule:
    where = f"{where} {table.get('prefix', '?')!r}"
    unknown = set(table) - _RULE_KEYS
    missing = {"prefix", "upstream"} - set(table)
    if unknown or missing:
        problems = [f"unknown key(s) {sorted(unknown)}"] if unknown else []
        problems += [f"missing key(s) {sorted(missing)}"] if missing else []
        raise ConfigError(f"{where}: " + "; ".join(problems))

    def typed(key: str, kind: type, default: Any = None) -> Any:
        value = table.get(key, default)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise ConfigError(f"{where}: {key} must be a {kind.__name__}, not {value!r}")
        return value

    prefix, upstream = typed("prefix", str), typed("upstream", str).rstrip("/")
    if not limits.is_repository_name(prefix):
        raise ConfigError(f"{where}: prefix must be a repository name (lowercase letters, digits, . _ - and /)")
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise ConfigError(f"{where}: upstream {upstream!r} must be http(s)://host[:port]")
    namespace = typed("upstream_namespace", str)
    if namespace is not None and not limits.REPOSITORY_NAME.fullmatch(namespace):
        raise ConfigError(f"{where}: upstream_namespace {namespace!r} must be a repository name")
    ttl = typed("tag_ttl_seconds", int, DEFAULT_TAG_TTL_SECONDS)
    if ttl < 0:
        raise ConfigError(f"{where}: tag_ttl_seconds must not be negative")
    sizes = {key: typed(key, int) for key in ("max_layer_size_bytes", "max_total_size_bytes")}
    for key, value in sizes.items():
        if value is not None and value < 1:
            raise ConfigError(f"{where}: {key} must be at least 1 (leave it out for no limit)")
    credentials = typed("credentials", dict)
    if credentials is not None:
        if set(credentials) != _CREDENTIAL_KEYS or not all(isinstance(v, str) and v for v in credentials.values()):
            raise ConfigError(f'{where}: credentials must be {{ username_env = "VAR", password_env = "VAR" }}')
        unset = [name for name in credentials.values() if not env.get(name)]
        if unset:
            raise ConfigError(f"{where}: the environment variable(s) {', '.join(unset)} named in credentials are unset")
        credentials = Credentials(**credentials)
    return Rule(
        prefix=prefix,
        upstream=upstream,
        upstream_namespace=namespace,
        tag_ttl_seconds=ttl,
        credentials=credentials,
        allow_anonymous_pull_through=typed("allow_anonymous_pull_through", bool, False),
        **sizes,
    )


def _check_unique(accounts: tuple[AccountConfig, ...]) -> None:
    for attribute in ("id", "alias", "access_key_id"):
        seen = [getattr(a, attribute) for a in accounts]
        duplicates = {v for v in seen if seen.count(v) > 1}
        if duplicates:
            raise ConfigError(f"two accounts share the {attribute} {sorted(duplicates)[0]!r}")


def _user(account_id: str, table: Mapping[str, Any], env: Mapping[str, str], base: Path) -> UserConfig:
    where = f"user {table.get('name', '?')!r} of account {account_id}"
    unknown = set(table) - _USER_KEYS
    missing = {"name", "access_key_id", "secret_access_key_env"} - set(table)
    problems = [f"unknown key(s) {sorted(unknown)}"] if unknown else []
    problems += [f"missing key(s) {sorted(missing)}"] if missing else []
    if "policy" in table and "policy_file" in table:
        problems.append("give policy or policy_file, not both")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    name, key_id, variable = (str(table[k]) for k in ("name", "access_key_id", "secret_access_key_env"))
    if not USER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: the name must be 1-64 letters, digits and _+=,.@-")
    if not ACCESS_KEY_ID.fullmatch(key_id):
        raise ConfigError(f"{where}: access_key_id must be 16-128 letters and digits")
    policy_text: str | None = None
    if "policy_file" in table:
        path = base / str(table["policy_file"])
        try:
            policy_text = path.read_text()
        except OSError as error:
            raise ConfigError(f"{where}: cannot read policy_file {path}: {error}") from error
    elif "policy" in table:
        policy_text = str(table["policy"])
    if policy_text is not None:
        try:
            policies.check(policy_text, "identity")
        except policies.PolicyError as error:
            raise ConfigError(f"{where}: {error.reason}") from None
    secret = env.get(variable) or None
    if secret is not None and len(secret) < 16:
        raise ConfigError(f"{where}: the secret in {variable} must be at least 16 characters")
    return UserConfig(account_id, name, key_id, variable, secret, policy_text)


def _check_users(accounts: tuple[AccountConfig, ...], users: list[UserConfig]) -> None:
    names = [(u.account_id, u.name) for u in users]
    for account_id, name in names:
        if names.count((account_id, name)) > 1:
            raise ConfigError(f"two users of account {account_id} are named {name!r}")
    keys = [a.access_key_id for a in accounts] + [u.access_key_id for u in users]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"the access_key_id {key!r} is given twice (accounts and users need their own)")


def _default_account(data_dir: Path, env: Mapping[str, str]) -> AccountConfig:
    """The default account: env values win; the rest is generated once and kept in the data dir."""
    path = data_dir / "default-account.json"
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read {path}: {error}") from error
    generated = {
        "id": stored.get("id") or "".join(secrets.choice(string.digits) for _ in range(12)),
        "alias": stored.get("alias") or "pier-" + secrets.token_hex(4),
        "access_key_id": stored.get("access_key_id")
        or "AKPR" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        "secret_access_key": stored.get("secret_access_key") or secrets.token_urlsafe(30),
    }
    if generated != stored:
        _write_private(path, json.dumps(generated, indent=2) + "\n")
    chosen = {key: env.get(var) or generated.get(key) for key, var in _DEFAULT_ACCOUNT_ENV.items()}
    return AccountConfig(**chosen)  # type: ignore[arg-type]


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
