"""A real pier server per test session, and the clients that talk to it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.backends import Backend, PostgresS3
from tests.dockerd import docker as docker  # the session's private Docker engine, for any test module
from tests.server import Account, PierServer

OWNER = Account("111122223333", "owner-alias", "AKIAOWNER0000000001", "owner-secret-key-0123456789abcdef")
OTHER = Account("444455556666", "other-alias", "AKIAOTHER0000000002", "other-secret-key-0123456789abcdef")
TOKEN_ACCOUNT = Account("777788889999", "token-alias", "AKIATOKEN0000000003", "token-secret-key-0123456789abcdef")
SESSION_TOKEN = "pier-test-session-token"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes a quarter of a minute or more")


def _write_config(path: Path, extra: str = "") -> Path:
    accounts = "".join(
        f'[[accounts]]\nid = "{a.id}"\nalias = "{a.alias}"\naccess_key_id = "{a.access_key_id}"\n'
        f'secret_access_key = "{a.secret_access_key}"\n{extra_line}\n'
        for a, extra_line in ((OTHER, ""), (TOKEN_ACCOUNT, f'session_token = "{SESSION_TOKEN}"'))
    )
    path.write_text(extra + accounts)
    return path


def owner_env() -> dict[str, str]:
    return {
        "PIER_ACCOUNT_ID": OWNER.id,
        "PIER_ALIAS": OWNER.alias,
        "PIER_ACCESS_KEY_ID": OWNER.access_key_id,
        "PIER_SECRET_ACCESS_KEY": OWNER.secret_access_key,
    }


@pytest.fixture(scope="session", params=["sqlite-fs", "postgresql-s3"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every test that starts a server runs on both storage backends."""
    chosen = Backend() if request.param == "sqlite-fs" else PostgresS3()
    yield chosen
    chosen.stop()


@pytest.fixture(scope="session")
def pier(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[PierServer]:
    root = tmp_path_factory.mktemp("pier")
    server = PierServer(root / "data", _write_config(root / "pier.toml", backend.config()), owner_env())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path, backend: Backend) -> Iterator[Callable[..., PierServer]]:
    """A fresh server of the test's own (for restarts, limits and configuration)."""
    started: list[PierServer] = []

    def make(config: str = "", env: dict[str, str] | None = None, **fields: Any) -> PierServer:
        """A server with `config` lines in its pier.toml; `fields` go to PierServer (scheme, hostname, ca,
        port)."""
        config_file = _write_config(tmp_path / f"pier{len(started)}.toml", config + backend.config())
        server = PierServer(tmp_path / f"data{len(started)}", config_file, env or owner_env(), **fields)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def make_plain_server(tmp_path: Path) -> Iterator[Callable[..., PierServer]]:
    """Like make_server, on SQLite and the filesystem only: for what the storage plays no part in (TLS,
    signals, settings), so it runs once rather than once per backend."""
    started: list[PierServer] = []

    def make(config: str = "", env: dict[str, str] | None = None, **fields: Any) -> PierServer:
        config_file = _write_config(tmp_path / f"plain{len(started)}.toml", config)
        server = PierServer(tmp_path / f"plain-data{len(started)}", config_file, env or owner_env(), **fields)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


def client(server: PierServer, account: Account = OWNER, **kwargs: Any) -> Any:
    return boto3.client(
        "ecr-public",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=account.access_key_id,
        aws_secret_access_key=account.secret_access_key,
        **{**({"verify": str(server.ca)} if server.ca is not None else {}), **kwargs},
    )


@pytest.fixture(scope="session")
def ecr(pier: PierServer) -> Any:
    return client(pier)


@pytest.fixture(scope="session")
def ecr_other(pier: PierServer) -> Any:
    return client(pier, OTHER)


@pytest.fixture
def repo_name() -> str:
    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def repo(ecr: Any, repo_name: str) -> str:
    ecr.create_repository(repositoryName=repo_name)
    return repo_name


def aws_cli(server: PierServer, *args: str, account: Account = OWNER) -> subprocess.CompletedProcess[str]:
    """Run the real awscli (v1) against the server."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": account.access_key_id,
        "AWS_SECRET_ACCESS_KEY": account.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    ca_bundle = ["--ca-bundle", str(server.ca)] if server.ca is not None else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "ecr-public",
            *args,
            "--endpoint-url",
            server.url,
            "--output",
            "json",
            *ca_bundle,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
