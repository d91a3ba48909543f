"""Configuration: precedence, validation, generated credentials, and the CLI."""

from __future__ import annotations

import base64
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
    text = banner(config, terminal=True)
    assert config.default_account.secret_access_key in text
    assert "aws ecr-public get-login-password --endpoint-url http://127.0.0.1:5123" in text
    assert "docker login --username AWS --password-stdin 127.0.0.1:5123" in text


def test_banner_shows_the_secret_only_on_a_terminal(tmp_path: Path) -> None:
    from pier.cli import banner

    generated = load(env={}, flags={"data_dir": tmp_path / "a"})
    text = banner(generated, terminal=False)
    assert generated.default_account.secret_access_key not in text
    assert str((tmp_path / "a" / "default-account.json").resolve()) in text
    assert generated.default_account.access_key_id in text
    given = load(env={"PIER_SECRET_ACCESS_KEY": "a-secret-from-the-environment"}, flags={"data_dir": tmp_path / "b"})
    text = banner(given, terminal=False)
    assert "a-secret-from-the-environment" not in text and "PIER_SECRET_ACCESS_KEY" in text


def test_tls_metrics_and_log_settings(tmp_path: Path) -> None:
    tls = load(env={}, flags={"data_dir": tmp_path, "port": 5443, "tls_cert": "c.pem", "tls_key": "k.pem"})
    assert tls.effective_public_url == "https://127.0.0.1:5443"
    assert load(env={}, flags={"data_dir": tmp_path, "host": "::1", "port": 5000}).effective_public_url == (
        "http://[::1]:5000"
    )
    assert load(env={}, flags={"data_dir": tmp_path}).metrics == "on"
    with pytest.raises(ConfigError, match="go together"):
        load(env={}, flags={"data_dir": tmp_path, "tls_cert": "c.pem"})
    with pytest.raises(ConfigError, match="metrics_token"):
        load(env={}, flags={"data_dir": tmp_path, "metrics": "token"})
    with_token = load(env={"PIER_METRICS_TOKEN": "t" * 16}, flags={"data_dir": tmp_path, "metrics": "token"})
    assert with_token.metrics_token == "t" * 16
    with pytest.raises(ConfigError, match="metrics must be"):
        load(env={}, flags={"data_dir": tmp_path, "metrics": "yes"})
    with pytest.raises(ConfigError, match="log_format"):
        load(env={"PIER_LOG_FORMAT": "xml"}, flags={"data_dir": tmp_path})


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


USER_POLICY = '{"Statement": {"Effect": "Allow", "Action": "ecr-public:Describe*", "Resource": "*"}}'


def test_users_declared_in_pier_toml(tmp_path: Path) -> None:
    (tmp_path / "reader.json").write_text(USER_POLICY)
    toml = tmp_path / "pier.toml"
    toml.write_text(
        "[[users]]\n"
        'name = "ci"\naccess_key_id = "AKIACI00000000000001"\nsecret_access_key_env = "CI_SECRET"\n'
        f"policy = '{USER_POLICY}'\n"
        '[[accounts]]\nid = "444455556666"\nalias = "partner"\naccess_key_id = "AKIAPARTNER00000001"\n'
        'secret_access_key = "a-long-random-secret"\n'
        "[[accounts.users]]\n"
        'name = "reader"\naccess_key_id = "AKIAREADER000000001"\nsecret_access_key_env = "READER_SECRET"\n'
        'policy_file = "reader.json"\n'
    )
    env = {"PIER_ACCOUNT_ID": "111122223333", "CI_SECRET": "ci-secret-0123456789abcdef"}
    config = load(toml, env=env, flags={"data_dir": tmp_path / "data"})
    ci, reader = config.users
    assert (ci.account_id, ci.name, ci.access_key_id, ci.secret_access_key) == (
        "111122223333",
        "ci",
        "AKIACI00000000000001",
        "ci-secret-0123456789abcdef",
    )
    assert (reader.account_id, reader.name, reader.policy_text) == ("444455556666", "reader", USER_POLICY)
    assert reader.secret_access_key is None  # READER_SECRET is not set: `pier serve` says so and stops
    assert config.users_without_secrets() == ["reader (READER_SECRET)"]
    assert "ci-secret" not in repr(config)


@pytest.mark.parametrize(
    "table, message",
    [
        ('name = "a"\naccess_key_id = "AKIAAAAAAAAAAAAAAAA1"\nsecret_access_key_env = "S"\ncolour = 1\n', "unknown"),
        ('name = "a"\naccess_key_id = "AKIAAAAAAAAAAAAAAAA1"\n', "missing key"),
        ('name = "a b"\naccess_key_id = "AKIAAAAAAAAAAAAAAAA1"\nsecret_access_key_env = "S"\n', "name"),
        ('name = "a"\naccess_key_id = "short"\nsecret_access_key_env = "S"\n', "access_key_id"),
        (
            'name = "a"\naccess_key_id = "AKIAAAAAAAAAAAAAAAA1"\nsecret_access_key_env = "S"\n'
            'policy = "{}"\npolicy_file = "p.json"\n',
            "not both",
        ),
        (
            'name = "a"\naccess_key_id = "AKIAAAAAAAAAAAAAAAA1"\nsecret_access_key_env = "S"\n'
            'policy = \'{"Statement": {"Effect": "Allow", "Action": "ecr-public:*"}}\'\n',
            "Resource",
        ),
        ('name = "a"\naccess_key_id = "AKIAOWNER0000000001"\nsecret_access_key_env = "S"\n', "given twice"),
    ],
    ids=["unknown-key", "missing-keys", "bad-name", "bad-key-id", "two-policies", "malformed-policy", "same-key"],
)
def test_bad_users_are_clear_errors(tmp_path: Path, table: str, message: str) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text("[[users]]\n" + table)
    with pytest.raises(ConfigError, match=message):
        load(toml, env={"PIER_ACCESS_KEY_ID": "AKIAOWNER0000000001"}, flags={"data_dir": tmp_path})


def test_secrets_key_must_be_32_bytes_of_base64(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        load(env={"PIER_SECRETS_KEY": "dG9vIHNob3J0"}, flags={"data_dir": tmp_path})
    key = base64.b64encode(bytes(range(32))).decode()
    assert load(env={"PIER_SECRETS_KEY": key}, flags={"data_dir": tmp_path}).secrets_key == key


def test_serve_refuses_to_start_without_a_declared_users_secret(tmp_path: Path) -> None:
    toml = tmp_path / "pier.toml"
    toml.write_text('[[users]]\nname = "ci"\naccess_key_id = "AKIACI00000000000001"\nsecret_access_key_env = "NOPE"\n')
    done = subprocess.run(
        [sys.executable, "-m", "pier", "serve", "--config", str(toml), "--data-dir", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "NOPE"},
    )
    assert done.returncode != 0
    assert "ci (NOPE)" in done.stderr


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
