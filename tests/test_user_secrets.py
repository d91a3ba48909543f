"""Users' secrets at rest: the database (and SQLite's -wal and -shm) readable by pier's user only, secrets
sealed with PIER_SECRETS_KEY, never in a log; a sealed secret without its key authenticates nothing."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.backends import Backend, PostgresS3
from tests.conftest import client, owner_env
from tests.server import PierServer
from tests.users import allow, create_user, user_client


def stored_secrets(backend: Backend, server: PierServer) -> dict[str, str]:
    """access key id -> the secret column, read from the server's database with SQL of the test's own."""
    if isinstance(backend, PostgresS3):
        assert server.config_file is not None
        line = next(x for x in server.config_file.read_text().splitlines() if x.startswith("database_url"))
        url = line.split("=", 1)[1].strip().strip('"')
    else:
        url = f"sqlite:///{server.data_dir / 'pier.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT access_key_id, secret FROM iam_access_keys")).all()
    finally:
        engine.dispose()
    return {key: secret for key, secret in rows}


def test_secrets_are_private_sealed_and_never_logged(make_server: Any, backend: Backend, tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    # Two workers: the config they read from the data dir must not hold the key.
    server: PierServer = make_server("workers = 2\n", env={**owner_env(), "PIER_SECRETS_KEY": key})
    _, keys = create_user(server, tmp_path, allow("ecr-public:DescribeRepositories"))
    user = user_client(server, keys)
    user.describe_repositories()
    with pytest.raises(user.exceptions.ClientError):
        user.create_repository(repositoryName="refused")

    sealed = stored_secrets(backend, server)[keys.access_key_id]
    assert sealed.startswith("aes256gcm:") and keys.secret_access_key not in sealed
    if not isinstance(backend, PostgresS3):
        files = [server.data_dir / name for name in ("pier.db", "pier.db-wal", "pier.db-shm", "pier.db.write-lock")]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert keys.secret_access_key.encode() not in path.read_bytes()
    assert keys.secret_access_key not in server.log()
    audit = (server.data_dir / "audit.log").read_text()
    assert keys.access_key_id in audit and keys.secret_access_key not in audit
    written = list(server.data_dir.glob("*.json")) + list(server.data_dir.glob(".*.json"))
    assert any(p.name == ".serve-config.json" for p in written)
    assert key not in "".join(p.read_text(errors="replace") for p in written)

    # Under another key, pier cannot open the secret: that access key authenticates nothing.
    server.env["PIER_SECRETS_KEY"] = base64.b64encode(os.urandom(32)).decode()
    server.restart()
    with pytest.raises(user.exceptions.ClientError) as info:
        user_client(server, keys).describe_repositories()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    client(server).describe_repositories()  # the account's own key is not in the database
    assert f"access key {keys.access_key_id} cannot be used" in server.log()
