"""Configuration: precedence, validation, generated credentials, and the CLI."""

from __future__ import annotations

import json
import os
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
    ],
    ids=["unknown-key", "bad-type", "bad-url", "bad-id", "missing-keys", "bad-alias", "bad-toml"],
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


PULL_THROUGH = """
[[pull_through]]
prefix = "hub"
upstream = "https://registry-1.docker.io/"
upstream_namespace = "library"
tag_ttl_seconds = 600
credentials = { username_env = "HUB_USER", password_env = "HUB_TOKEN" }
allow_anonymous_pull_through = true
max_layer_size_bytes = 1000000
max_total_size_bytes = 50000000

[[pull_through]]
prefix = "quay/mirror"
upstream = "http://127.0.0.1:5001"

[[accounts]]
id = "123456789012"
alias = "partner"
access_key_id = "AKPARTNER"
secret_access_key = "0123456789abcdef0"

[[accounts.pull_through]]
prefix = "ghcr"
upstream = "https://ghcr.io"
"""


def test_pull_through_rules_for_each_account(tmp_path: Path) -> None:
    from pier.config import load_resolved, save_resolved
    from pier.core.pullthrough import Credentials, Rule

    toml = tmp_path / "pier.toml"
    toml.write_text(PULL_THROUGH)
    env = {"HUB_USER": "someone", "HUB_TOKEN": "a-secret-token"}
    config = load(toml, env=env, flags={"data_dir": tmp_path})
    hub, quay = config.default_account.pull_through
    assert hub == Rule(
        prefix="hub",
        upstream="https://registry-1.docker.io",
        upstream_namespace="library",
        tag_ttl_seconds=600,
        credentials=Credentials("HUB_USER", "HUB_TOKEN"),
        allow_anonymous_pull_through=True,
        max_layer_size_bytes=1_000_000,
        max_total_size_bytes=50_000_000,
    )
    assert (quay.tag_ttl_seconds, quay.credentials, quay.allow_anonymous_pull_through) == (300, None, False)
    assert (quay.max_layer_size_bytes, quay.max_total_size_bytes) == (None, None)
    assert [r.prefix for r in config.accounts[1].pull_through] == ["ghcr"]
    assert hub.upstream_repository("hub/nginx") == "library/nginx"
    assert hub.source("hub/nginx") == "registry-1.docker.io/library/nginx"
    assert quay.upstream_repository("quay/mirror/org/app") == "org/app"
    # The workers' copy of the config keeps the rules, and only the names of the credentials' variables.
    resolved = tmp_path / "resolved.json"
    save_resolved(config, resolved)
    assert "a-secret-token" not in resolved.read_text()
    assert load_resolved(resolved).accounts == config.accounts


@pytest.mark.parametrize(
    "rule, message",
    [
        ('prefix = "hub"\nupstream = "https://x.io"\ncolour = "blue"\n', "unknown key"),
        ('prefix = "hub"\n', "missing key"),
        ('prefix = "Hub!"\nupstream = "https://x.io"\n', "prefix"),
        ('prefix = "hub"\nupstream = "ftp://x.io"\n', "upstream"),
        ('prefix = "hub"\nupstream = "https://x.io/v2/"\n', "upstream"),
        ('prefix = "hub"\nupstream = "https://x.io"\ntag_ttl_seconds = "5"\n', "tag_ttl_seconds"),
        ('prefix = "hub"\nupstream = "https://x.io"\nmax_total_size_bytes = 0\n', "max_total_size_bytes"),
        ('prefix = "hub"\nupstream = "https://x.io"\ncredentials = { username_env = "U" }\n', "credentials"),
        (
            'prefix = "hub"\nupstream = "https://x.io"\ncredentials = { username_env = "U", password_env = "UNSET" }\n',
            "UNSET named in credentials are unset",
        ),
        (
            'prefix = "hub"\nupstream = "https://x.io"\n[[pull_through]]\nprefix = "hub/x"\nupstream = "https://y"\n',
            "overlap",
        ),
    ],
    ids=["unknown", "missing", "prefix", "scheme", "path", "ttl-type", "size", "credentials", "unset-env", "overlap"],
)
def test_bad_pull_through_rules_are_clear_errors(tmp_path: Path, rule: str, message: str) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text("[[pull_through]]\n" + rule)
    with pytest.raises(ConfigError, match=message):
        load(toml, env={"U": "user"}, flags={"data_dir": tmp_path})


def test_serve_refuses_to_start_when_a_credentials_variable_is_unset(tmp_path: Path) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text(
        '[[pull_through]]\nprefix = "hub"\nupstream = "https://registry-1.docker.io"\n'
        'credentials = { username_env = "PIER_TEST_HUB_USER", password_env = "PIER_TEST_HUB_TOKEN" }\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_TEST_HUB")}
    done = subprocess.run(
        [sys.executable, "-m", "pier", "serve", "--config", str(toml), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**env, "PIER_TEST_HUB_USER": "someone"},
    )
    assert done.returncode != 0
    assert "PIER_TEST_HUB_TOKEN named in credentials are unset" in done.stderr
