"""docker and oras-py pulling through a pull-through cache (skopeo is in test_pull_through.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import oras.client
import pytest

from tests.conftest import OWNER, client
from tests.dockerd import DockerCli
from tests.oci.helpers import password
from tests.oci.test_docker import build, hello, login
from tests.pullthrough.helpers import cache_server, rule
from tests.pullthrough.upstreams import Distribution, Proxy
from tests.server import PierServer


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[Distribution, Proxy]]:
    registry = Distribution(tmp_path / "upstream")
    proxy = Proxy(registry.port)
    yield registry, proxy
    proxy.close()
    registry.stop()


def test_docker_pulls_through_the_cache(
    make_server: Callable[..., PierServer], docker: DockerCli, upstream: tuple[Distribution, Proxy], tmp_path: Path
) -> None:
    registry, proxy = upstream
    name = f"tools/hello-{uuid.uuid4().hex[:8]}"
    built = f"{registry.host}/{name}:v1"
    build(docker, tmp_path, built, "hello through the cache\n")
    docker.run("push", built)
    docker.run("rmi", built)  # its layer goes with it: pulls below download it
    server = cache_server(make_server, rule(proxy.url))
    image = f"{server.host}/{OWNER.alias}/hub/{name}:v1"

    anonymous = docker.with_config(tmp_path / "anonymous")
    refused = anonymous.run("pull", image, check=False)
    assert refused.returncode != 0 and "not cached yet: log in to pull it through" in refused.stderr
    assert proxy.seen == []  # an anonymous client caused nothing upstream

    login(docker, server)
    docker.run("pull", image)
    assert hello(docker, image) == "hello through the cache\n"
    fetched = [path for path in proxy.requests("GET", f"/v2/{name}/") if "/blobs/" in path]
    assert len(fetched) == 2 == len(set(fetched))  # its config and its layer, once each

    # Cached now: an anonymous docker pulls it, from pier alone.
    docker.run("rmi", image)
    asked = len(proxy.seen)
    anonymous.run("pull", image)
    assert hello(anonymous, image) == "hello through the cache\n"
    assert len(proxy.seen) == asked
    docker.run("rmi", image)


def test_oras_pulls_an_artifact_through_the_cache(
    make_server: Callable[..., PierServer],
    upstream: tuple[Distribution, Proxy],
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    registry, proxy = upstream
    monkeypatch.chdir(tmp_path)
    Path("model.bin").write_bytes(os.urandom(500_000))
    pusher = oras.client.OrasClient(hostname=registry.host, insecure=True)
    assert pusher.push(target=f"{registry.host}/models/small:v1", files=["model.bin"]).status_code == 201

    server = cache_server(make_server, rule(proxy.url, prefix="ml"))
    puller = oras.client.OrasClient(hostname=server.host, insecure=True)
    puller.auth.set_basic_auth("AWS", password(client(server)))
    out = tmp_path / "out"
    out.mkdir()
    pulled = puller.pull(target=f"{server.host}/{OWNER.alias}/ml/models/small:v1", outdir=str(out))
    assert Path(pulled[0]).read_bytes() == Path("model.bin").read_bytes()
    detail = client(server).describe_images(repositoryName="ml/models/small")["imageDetails"][0]
    assert detail["imageTags"] == ["v1"]
