"""docker and skopeo logged in as IAM users: a CI user allowed to push only to team/* pushes there and is
refused elsewhere (403 DENIED naming the action, which docker prints), and a pull-only user cannot push."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.conftest import OWNER, client
from tests.dockerd import DockerCli
from tests.oci.helpers import password
from tests.oci.test_docker import build, push
from tests.oci.test_skopeo import single_image_layout, skopeo
from tests.server import PierServer
from tests.users import LOGIN, PUSH, access_denied, allow, create_user, repository_arn, user_client


def login(cli: DockerCli, server: PierServer, ecr: Any) -> None:
    done = cli.run("login", "--username", "AWS", "--password-stdin", server.host, input=password(ecr))
    assert "Login Succeeded" in done.stdout


def test_a_ci_user_pushes_to_team_only(make_server: Any, docker: DockerCli, tmp_path: Path) -> None:
    server: PierServer = make_server()
    owner = client(server)
    for name in ("team/api", "other/api"):
        owner.create_repository(repositoryName=name)
    ci_arn, ci_keys = create_user(server, tmp_path, LOGIN, allow(PUSH, repository_arn("team/*")))
    ci = user_client(server, ci_keys)
    team, other = (f"{server.host}/{OWNER.alias}/{name}" for name in ("team/api", "other/api"))

    cli = docker.with_config(tmp_path / "ci-docker")
    login(cli, server, ci)
    build(cli, tmp_path, f"{team}:v1", f"built by CI {uuid.uuid4()}")
    digest, _ = push(cli, f"{team}:v1")
    assert owner.describe_images(repositoryName="team/api")["imageDetails"][0]["imageDigest"] == digest
    cli.run("tag", f"{team}:v1", f"{other}:v1")
    refused = cli.run("push", f"{other}:v1", check=False)
    assert refused.returncode != 0
    # docker prints the /v2/ error: the code in words, then pier's message in IAM's words.
    denied = access_denied(ci_arn, "ecr-public:InitiateLayerUpload", repository_arn("other/api"))
    assert f"denied: {denied}" in refused.stderr, refused.stderr
    assert owner.describe_images(repositoryName="other/api")["imageDetails"] == []

    # skopeo, with the same login.
    single_image_layout(tmp_path / "layout")
    creds = f"AWS:{password(ci)}"
    source = f"oci:{tmp_path}/layout:v1"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, source, f"docker://{team}:skopeo")
    refused = skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", creds, source, f"docker://{other}:skopeo", check=False
    )
    assert refused.returncode != 0 and denied in refused.stderr, refused.stderr
    tags = {t for d in owner.describe_images(repositoryName="team/api")["imageDetails"] for t in d["imageTags"]}
    assert tags == {"v1", "skopeo"}

    # A pull-only user logs in and pulls, but cannot push even with docker push.
    reader_arn, reader_keys = create_user(server, tmp_path, LOGIN)
    reader = docker.with_config(tmp_path / "reader-docker")
    login(reader, server, user_client(server, reader_keys))
    reader.run("tag", f"{team}:v1", f"{team}:v2")
    refused = reader.run("push", f"{team}:v2", check=False)
    assert refused.returncode != 0
    # Its layers are there already, so docker goes straight to the manifest: PutImage is what is refused.
    assert f"denied: User: {reader_arn} is not authorized to perform: ecr-public:" in refused.stderr, refused.stderr
    assert "v2" not in {
        t for d in owner.describe_images(repositoryName="team/api")["imageDetails"] for t in d["imageTags"]
    }
    reader.run("rmi", f"{team}:v1", f"{team}:v2", f"{other}:v1")
    reader.run("pull", f"{team}:v1")
