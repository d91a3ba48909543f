"""The container image: the Containerfile built with docker's classic builder on a base made here, run with
--network host, healthy, serving pushes and pulls from docker; and compose.yaml naming only real settings.

The engine is one of the module's own, on overlay2 where it runs (see the `docker` fixture below). No
registry can be reached to pull a base image from, so the base is Debian bookworm's minbase with
python3 made by mmdebstrap (kept between runs in PIER_TEST_CACHE, default <tmp>/pier-test-cache) and
`docker import`ed. This machine reaches the package indexes (Debian's and PyPI) through an intercepting
proxy whose CA is in /usr/local/share/ca-certificates/: a small image built here on top of the base adds
those CAs, and the Containerfile itself stays as it ships (built with --build-arg BASE=<that image>).
Debian's pip trusts the system's CAs, so nothing else is needed; proxy variables, when this machine sets
them, are passed as build arguments (docker predefines those).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pier import config as pier_config
from tests.conftest import OWNER, client, owner_env
from tests.dockerd import DockerCli, private_engine
from tests.oci.test_docker import build, hello, login, push
from tests.server import PierServer, free_port

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("PIER_TEST_CACHE") or Path(tempfile.gettempdir()) / "pier-test-cache")
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
CAS = Path("/usr/local/share/ca-certificates")
PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy")
UID = "10001"


def base_tarball() -> Path:
    """bookworm's minbase with python3, made by mmdebstrap once and kept in the cache."""
    tarball = CACHE / f"bookworm-minbase-{PACKAGES.replace(',', '-')}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (scripts/test installs it)")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f"partial-{os.getpid()}-{tarball.name}")
    made = subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--format=tar", f"--include={PACKAGES}", "bookworm", str(partial)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if made.returncode != 0:
        partial.unlink(missing_ok=True)
        pytest.fail(f"mmdebstrap failed:\n{made.stderr[-3000:]}")
    os.replace(partial, tarball)
    return tarball


def base_image(docker: DockerCli, tmp_path: Path) -> str:
    """The imported base, with this machine's extra CAs trusted."""
    docker.run("import", str(base_tarball()), "pier-test-base:raw", timeout=600)
    context = tmp_path / "base"
    context.mkdir()
    lines = ["FROM pier-test-base:raw"]
    cas = sorted(CAS.glob("*.crt")) if CAS.is_dir() else []
    if cas:
        for ca in cas:
            shutil.copy(ca, context / ca.name)
        lines += ["COPY *.crt /usr/local/share/ca-certificates/", "RUN update-ca-certificates"]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    docker.run("build", "--network", "host", "-t", "pier-test-base:ca", str(context), timeout=600)
    return "pier-test-base:ca"


def listening(port: int) -> set[str]:
    """The addresses TCP sockets listen on at `port`, on this host (the containers share its network)."""
    found = set()
    for table, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port and len(address) == size:
                found.add(address)
    return found


@pytest.fixture(scope="module")
def docker() -> Iterator[DockerCli]:
    """A private engine of this module's own, on overlay2 where this machine allows it, else on vfs (the
    session's driver), on which every build step copies the whole image tree: this build takes ~300 s on
    vfs here, ~85 s on overlay2."""
    with private_engine("overlay2") as cli:
        yield cli


@pytest.mark.slow
def test_the_image_builds_runs_healthy_and_serves_docker(docker: DockerCli, tmp_path: Path) -> None:
    cli = docker.with_config(tmp_path / "docker-config")
    arguments = ["--build-arg", f"BASE={base_image(docker, tmp_path)}"]
    for name in PROXY_ARGS:
        if os.environ.get(name):
            arguments += ["--build-arg", f"{name}={os.environ[name]}"]
    image = f"pier-test:{uuid.uuid4().hex[:8]}"
    docker.run("build", "--network", "host", *arguments, "-f", "Containerfile", "-t", image, str(ROOT), timeout=1200)

    inspected = docker.run("image", "inspect", "--format", "{{json .Config}}", image).stdout
    settings: dict[str, Any] = yaml.safe_load(inspected)  # JSON is YAML
    assert settings["User"] == "pier" and settings["Entrypoint"] == ["pier"] and settings["Cmd"] == ["serve"]
    assert "/data" in settings["Volumes"] and "PIER_HOST=0.0.0.0" in settings["Env"]
    assert "--host" not in " ".join(settings["Entrypoint"] + settings["Cmd"])  # so a PIER_HOST given wins

    port = free_port()
    server = PierServer(tmp_path / "unused", port=port)
    env = {**owner_env(), "PIER_PORT": str(port), "PIER_PUBLIC_URL": server.url}
    name = f"pier-{uuid.uuid4().hex[:8]}"
    run = ["run", "--detach", "--name", name, "--network", "host", "--health-interval", "1s"]
    docker.run(*run, *(f"--env={key}={value}" for key, value in env.items()), image)
    try:
        deadline = time.monotonic() + 180
        health = ""
        while health != "healthy":  # the HEALTHCHECK found /healthz on PIER_PORT, not on 5000
            assert time.monotonic() < deadline, docker.run("logs", name, check=False).stderr
            time.sleep(1)
            health = docker.run("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert listening(port) == {"00000000"}  # every interface (0.0.0.0)
        assert docker.run("exec", name, "id", "-u").stdout.strip() == UID
        mounts = docker.run("inspect", "--format", "{{range .Mounts}}{{.Destination}} {{end}}", name).stdout
        assert "/data" in mounts.split()
        files = docker.run("exec", name, "ls", "-ln", "/data").stdout
        assert "default-account.json" in files and "pier.db" in files
        assert all(line.split()[2] == UID for line in files.splitlines()[1:]), files

        # A PIER_HOST given by the user wins over the image's: a second pier in the container, on loopback.
        other = free_port()
        exec_env = ["--env=PIER_HOST=127.0.0.1", f"--env=PIER_PORT={other}", "--env=PIER_DATA_DIR=/tmp/other"]
        docker.run("exec", "--detach", *exec_env, name, "pier", "serve")
        deadline = time.monotonic() + 60
        while not listening(other):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert listening(other) == {"0100007F"}  # 127.0.0.1

        # docker pushes to it and pulls from it.
        client(server).create_repository(repositoryName="from-a-container")
        reference = f"{server.host}/{OWNER.alias}/from-a-container:v1"
        content = f"served from a container {uuid.uuid4()}"
        build(cli, tmp_path, reference, content)
        login(cli, server)
        digest, _ = push(cli, reference)
        cli.run("rmi", reference)
        cli.run("pull", reference)
        assert hello(cli, reference) == content
        assert (
            client(server).describe_images(repositoryName="from-a-container")["imageDetails"][0]["imageDigest"]
            == digest
        )
    finally:
        docker.run("rm", "--force", name, check=False)
        docker.run("rmi", "--force", image, check=False)


def test_compose_runs_pier_with_postgresql_through_settings_pier_knows(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["pier"]["build"]["dockerfile"] == "Containerfile"
    assert services["pier"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["db"]["image"].startswith("postgres:")
    settings = services["pier"]["environment"]
    known = {f"PIER_{key.upper()}" for key in pier_config._SCALARS}
    assert set(settings) <= known, set(settings) - known
    url = settings["PIER_DATABASE_URL"]
    database = services["db"]["environment"]
    user, password = database["POSTGRES_USER"], database["POSTGRES_PASSWORD"]
    assert url == f"postgresql+psycopg://{user}:{password}@db:5432/{database['POSTGRES_DB']}"
    assert any(volume.endswith(":/data") for volume in services["pier"]["volumes"])
    # The settings load as pier loads them.
    loaded = pier_config.load(env=settings, flags={"data_dir": tmp_path / "data"})
    assert loaded.effective_database_url == url
