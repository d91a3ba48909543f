"""Configuration: precedence, validation, generated credentials, and the CLI."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pier.config import ConfigError, load


def test_defaults_generate_and_keep_credentials(tmp_path: Path) -> None:
    first = load(env={}, flags={"data_dir": tmp_path})
    again = load(env={}, flags={"data_dir": tmp_path})
    assert first.default_account == again.default_account
    account = first.default_account
    assert len(account.id) == 12 and account.id.isdigit()
    stored = tmp_path / "default-account.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["secret_access_key"] == account.secret_access_key
    assert first.effective_public_url == "http://127.0.0.1:5000"
    assert first.public_host == "127.0.0.1:5000"


def test_precedence_toml_then_env_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text('port = 6000\nhost = "0.0.0.0"\npublic_url = "https://registry.example.com"\n')
    config = load(toml, env={"PIER_PORT": "7000", "PIER_ALIAS": "from-env"}, flags={"data_dir": tmp_path})
    assert (config.port, config.host) == (7000, "0.0.0.0")
    assert config.default_account.alias == "from-env"
    assert config.public_host == "registry.example.com"
    config = load(toml, env={"PIER_PORT": "7000"}, flags={"data_dir": tmp_path, "port": 8000})
    assert config.port == 8000


@pytest.mark.parametrize(
    "text, message",
    [
        ("prot = 5000\n", "unknown key"),
        ("port = 'abc'\n", "port"),
        ('public_url = "ftp://x"\n', "public_url"),
        ('[[accounts]]\nid = "1"\nalias = "ab"\naccess_key_id = "A"\nsecret_access_key = "s" \n', "12 digits"),
        ('[[accounts]]\nid = "123456789012"\nalias = "ab"\n', "missing key"),
        (
            '[[accounts]]\nid = "123456789012"\nalias = "Bad Alias"\naccess_key_id = "AK"\n'
            'secret_access_key = "0123456789abcdef0"\n',
            "alias",
        ),
        ("port = [\n", "cannot read"),
        ("downloads_flush_seconds = 30\n", "downloads_flush_seconds"),
        ("downloads_flush_seconds = 0\n", "downloads_flush_seconds"),
        (
            '[[accounts]]\nid = "123456789012"\nalias = "ab"\naccess_key_id = "AK"\n'
            'secret_access_key = "0123456789abcdef0"\nverified = "maybe"\n',
            "verified",
        ),
    ],
    ids=[
        "unknown-key",
        "bad-type",
        "bad-url",
        "bad-id",
        "missing-keys",
        "bad-alias",
        "bad-toml",
        "flush-too-rare",
        "flush-zero",
        "bad-verified",
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(toml, env={}, flags={"data_dir": tmp_path})


def test_duplicate_accounts_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text(
        '[[accounts]]\nid = "123456789012"\nalias = "dup"\naccess_key_id = "AK1"\n'
        'secret_access_key = "0123456789abcdef0"\n'
    )
    with pytest.raises(ConfigError, match="alias"):
        load(toml, env={"PIER_ALIAS": "dup"}, flags={"data_dir": tmp_path})


def test_cli_reports_config_errors(tmp_path: Path) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text("colour = 'blue'\n")
    done = subprocess.run(
        [sys.executable, "-m", "pier", "serve", "--config", str(toml), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "unknown key(s) colour" in done.stderr


def test_banner_prints_what_to_run(tmp_path: Path) -> None:
    from pier.cli import banner

    config = load(env={"PIER_ALIAS": "demo"}, flags={"data_dir": tmp_path, "port": 5123})
    text = banner(config)
    assert config.default_account.secret_access_key in text
    assert "aws ecr-public get-login-password --endpoint-url http://127.0.0.1:5123" in text
    assert "docker login --username AWS --password-stdin 127.0.0.1:5123" in text


def test_rotate_key_and_revoke(make_server: Any) -> None:
    import httpx

    from tests.conftest import client
    from tests.oci.helpers import password

    server = make_server()
    before = password(client(server))

    def rotate(*flags: str) -> str:
        return server.run_cli("rotate-key", *flags)

    assert "signs tokens with key" in rotate()
    assert httpx.get(f"{server.url}/token", auth=("AWS", before)).status_code == 200  # still valid
    assert "no longer verify" in rotate("--revoke-others")
    server.restart()
    assert httpx.get(f"{server.url}/token", auth=("AWS", before)).status_code == 401
    after = password(client(server))
    assert httpx.get(f"{server.url}/token", auth=("AWS", after)).status_code == 200


def test_verified_publishers_come_from_pier_toml_only(tmp_path: Path) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text(
        'verified = true\n[[accounts]]\nid = "123456789012"\nalias = "partner"\naccess_key_id = "AK1"\n'
        'secret_access_key = "0123456789abcdef0"\nverified = true\n'
        '[[accounts]]\nid = "210987654321"\nalias = "other"\naccess_key_id = "AK2"\n'
        'secret_access_key = "0123456789abcdef0"\n'
    )
    config = load(toml, env={}, flags={"data_dir": tmp_path})
    assert [a.verified for a in config.accounts] == [True, True, False]
    assert [a.verified for a in load(env={}, flags={"data_dir": tmp_path}).accounts] == [False]
    assert (
        load(env={"PIER_DOWNLOADS_FLUSH_SECONDS": "2.5"}, flags={"data_dir": tmp_path}).downloads_flush_seconds == 2.5
    )
