"""docker itself against pier: the client most users have, driving a real engine (tests/dockerd.py).

Login with the password `aws ecr-public get-login-password` prints, `FROM scratch` builds, pushes, an
anonymous pull, a pull by digest, a second tag, a second repository sharing layers (docker mounts them
across repositories), the refusals a user meets (no login, no such repository), and a manifest list
made and pushed with `docker manifest`.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OWNER, aws_cli
from tests.dockerd import DockerCli
from tests.server import PierServer

DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def build(docker: DockerCli, tmp_path: Path, tag: str, content: str, platform: str | None = None) -> None:
    """A `FROM scratch` image holding one file, /hello.txt, with `content`."""
    context = tmp_path / f"context-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (context / "hello.txt").write_text(content)
    docker.run("build", *(["--platform", platform] if platform else []), "-t", tag, str(context))


def login(docker: DockerCli, pier: PierServer) -> None:
    password = aws_cli(pier, "get-login-password")
    assert password.returncode == 0, password.stderr
    logged_in = docker.run("login", "--username", "AWS", "--password-stdin", pier.host, input=password.stdout)
    assert "Login Succeeded" in logged_in.stdout


def push(docker: DockerCli, image: str) -> tuple[str, str]:
    """(the digest docker reports, everything it printed)."""
    pushed = docker.run("push", image)
    found = DIGEST.search(pushed.stdout)
    assert found, pushed.stdout
    return found[1], pushed.stdout


def hello(docker: DockerCli, image: str) -> str:
    """/hello.txt of a local image, read without running it (scratch images have nothing to run)."""
    container = docker.run("create", image, "/nothing").stdout.strip()
    try:
        archive = docker.run_bytes("cp", f"{container}:/hello.txt", "-")
    finally:
        docker.run("rm", container)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None
        return member.read().decode()


@pytest.fixture
def cli(docker: DockerCli, tmp_path: Path) -> DockerCli:
    """The session's engine with a config dir of this test's own: no login but the test's."""
    return docker.with_config(tmp_path / "docker-config")


def test_login_build_push_and_pull_by_tag_and_digest(
    pier: PierServer, cli: DockerCli, ecr: Any, repo: str, tmp_path: Path
) -> None:
    image = f"{pier.host}/{OWNER.alias}/{repo}"
    content = f"hello from {uuid.uuid4()}"
    build(cli, tmp_path, f"{image}:v1", content)
    login(cli, pier)
    digest, _ = push(cli, f"{image}:v1")
    details = ecr.describe_images(repositoryName=repo)["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in details] == [(digest, ["v1"])]
    # A second tag of the same image: nothing is uploaded again.
    cli.run("tag", f"{image}:v1", f"{image}:v2")
    again, output = push(cli, f"{image}:v2")
    assert again == digest and "Layer already exists" in output
    tags = ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"]
    assert sorted(tags) == ["v1", "v2"]
    # Anonymous pulls (pulls are public), by tag and by digest, into an engine that has nothing of it.
    cli.run("logout", pier.host)
    cli.run("rmi", f"{image}:v1", f"{image}:v2")
    cli.run("pull", f"{image}:v1")
    assert hello(cli, f"{image}:v1") == content
    cli.run("rmi", f"{image}:v1")
    cli.run("pull", f"{image}@{digest}")
    assert hello(cli, f"{image}@{digest}") == content
    inspected = json.loads(cli.run("image", "inspect", f"{image}@{digest}").stdout)
    assert f"{image}@{digest}" in inspected[0]["RepoDigests"]


def test_a_second_repository_shares_layers_by_mounting_them(
    pier: PierServer, cli: DockerCli, ecr: Any, repo: str, tmp_path: Path
) -> None:
    first = f"{pier.host}/{OWNER.alias}/{repo}"
    second_name = f"{repo}-second"
    ecr.create_repository(repositoryName=second_name)
    second = f"{pier.host}/{OWNER.alias}/{second_name}"
    build(cli, tmp_path, f"{first}:v1", f"shared {uuid.uuid4()}")
    login(cli, pier)
    digest, _ = push(cli, f"{first}:v1")
    cli.run("tag", f"{first}:v1", f"{second}:v1")
    again, output = push(cli, f"{second}:v1")
    assert again == digest
    assert f"Mounted from {OWNER.alias}/{repo}" in output  # docker's cross-repository mount, which pier did
    manifest = httpx.get(
        f"{pier.url}/v2/{OWNER.alias}/{second_name}/manifests/v1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    ).json()
    for blob in [manifest["config"], *manifest["layers"]]:
        got = httpx.get(f"{pier.url}/v2/{OWNER.alias}/{second_name}/blobs/{blob['digest']}", follow_redirects=True)
        assert got.status_code == 200 and len(got.content) == blob["size"]


def test_a_push_without_login_is_refused_clearly(pier: PierServer, cli: DockerCli, repo: str, tmp_path: Path) -> None:
    image = f"{pier.host}/{OWNER.alias}/{repo}:v1"
    build(cli, tmp_path, image, "not pushed")
    refused = cli.run("push", image, check=False)
    assert refused.returncode != 0
    assert "unauthorized: Log in to push or delete" in refused.stderr, refused.stderr
    assert "docker login" in refused.stderr  # and how to


def test_a_push_to_a_repository_that_does_not_exist_says_so(pier: PierServer, cli: DockerCli, tmp_path: Path) -> None:
    name = f"test/never-created-{uuid.uuid4().hex[:8]}"
    image = f"{pier.host}/{OWNER.alias}/{name}:v1"
    build(cli, tmp_path, image, "nowhere to go")
    login(cli, pier)
    refused = cli.run("push", image, check=False)
    assert refused.returncode != 0
    # What docker prints: the spec's code in words, then pier's message, which says what to do.
    assert f"name unknown: The repository with name '{name}' does not exist" in refused.stderr, refused.stderr
    assert f"create it first: aws ecr-public create-repository --repository-name {name}" in refused.stderr


def test_docker_manifest_pushes_a_manifest_list(
    pier: PierServer, cli: DockerCli, ecr: Any, repo: str, tmp_path: Path
) -> None:
    image = f"{pier.host}/{OWNER.alias}/{repo}"
    login(cli, pier)
    pushed = {}
    for architecture in ("amd64", "arm64"):
        build(cli, tmp_path, f"{image}:{architecture}", f"{architecture} {uuid.uuid4()}", f"linux/{architecture}")
        pushed[architecture], _ = push(cli, f"{image}:{architecture}")
    # 127.0.0.1 is an insecure registry: `docker manifest` needs to be told so.
    cli.run("manifest", "create", "--insecure", f"{image}:multi", f"{image}:amd64", f"{image}:arm64")
    listed = cli.run("manifest", "push", "--insecure", f"{image}:multi").stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", listed), listed
    index = httpx.get(f"{pier.url}/v2/{OWNER.alias}/{repo}/manifests/multi", headers={"Accept": DOCKER_LIST})
    assert index.headers["Docker-Content-Digest"] == listed
    entries = {m["platform"]["architecture"]: m["digest"] for m in index.json()["manifests"]}
    assert entries == pushed
    described = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "multi"}])["imageDetails"][0]
    assert described["imageManifestMediaType"] == DOCKER_LIST
    inspected = json.loads(cli.run("manifest", "inspect", "--insecure", f"{image}:multi").stdout)
    assert {m["platform"]["architecture"] for m in inspected["manifests"]} == {"amd64", "arm64"}
