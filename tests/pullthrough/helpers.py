"""What pull-through tests share: images pushed to an upstream with skopeo, and pier servers with rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import OWNER, client, owner_env
from tests.images import Blob, config, image_manifest, index_manifest, layer, write_layout
from tests.oci.helpers import bearer, password
from tests.oci.test_skopeo import skopeo
from tests.pullthrough.upstreams import PASSWORD, USER
from tests.server import PierServer

USER_ENV, PASSWORD_ENV = "PIER_TEST_UPSTREAM_USER", "PIER_TEST_UPSTREAM_PASSWORD"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT_ALL = {
    "Accept": ", ".join(
        [
            OCI_MANIFEST,
            OCI_INDEX,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
    )
}


class Image:
    """A single-platform image in an OCI layout, ready to push."""

    def __init__(self, path: Path, tag: str, random_bytes: int = 100_000, architecture: str = "amd64") -> None:
        self.layers = [layer({"etc/hello": f"{path.name}:{tag}\n".encode()}, random_bytes=random_bytes)]
        self.config = config(architecture, layers=self.layers)
        self.manifest = image_manifest(self.config, self.layers)
        self.path, self.tag = path, tag
        write_layout(path, {tag: self.manifest}, [b.data for b in self.blobs])

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    @property
    def size(self) -> int:
        return sum(len(b.data) for b in self.blobs)


def push(image: Image, registry_host: str, repository: str, tag: str | None = None, creds: Sequence[str] = ()) -> None:
    """skopeo copy of the image to the upstream (directly, not through any proxy)."""
    target = f"docker://{registry_host}/{repository}:{tag or image.tag}"
    skopeo("copy", "--dest-tls-verify=false", *creds, f"oci:{image.path}:{image.tag}", target)


def push_index(path: Path, registry_host: str, repository: str, tag: str, creds: Sequence[str] = ()) -> dict[str, Any]:
    """A two-platform index (linux/amd64, linux/arm64) pushed with skopeo --all; what it is made of."""
    blobs: list[bytes] = []
    children = []
    parts: dict[str, Any] = {}
    for architecture in ("amd64", "arm64"):
        layer_blob = layer({"arch": architecture.encode()}, random_bytes=50_000)
        config_blob = config(architecture, layers=[layer_blob])
        manifest = image_manifest(config_blob, [layer_blob])
        blobs += [layer_blob.data, config_blob.data]
        children.append((manifest, architecture, "linux"))
        parts[architecture] = {
            "manifest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
            "blobs": [layer_blob.digest, config_blob.digest],
        }
    index = index_manifest(children)
    write_layout(path, {tag: index}, blobs + [m for m, _, _ in children])
    target = f"docker://{registry_host}/{repository}:{tag}"
    skopeo("copy", "--all", "--dest-tls-verify=false", *creds, f"oci:{path}:{tag}", target)
    parts["index"] = "sha256:" + hashlib.sha256(index).hexdigest()
    return parts


def rule(upstream: str, prefix: str = "hub", **options: Any) -> str:
    """A pull_through rule as a pier.toml line (an inline table, so the lines after it stay top-level)."""
    values = {"prefix": prefix, "upstream": upstream, **options}
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            parts.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, int):
            parts.append(f"{key} = {value}")
        elif isinstance(value, dict):
            inner = ", ".join(f'{k} = "{v}"' for k, v in value.items())
            parts.append(f"{key} = {{ {inner} }}")
        else:
            parts.append(f"{key} = {json.dumps(value)}")
    return "{ " + ", ".join(parts) + " }"


def cache_server(make_server: Callable[..., PierServer], *rules: str, extra: str = "") -> PierServer:
    """A pier whose default account has these rules, with the upstream's credentials in its environment."""
    env = {**owner_env(), USER_ENV: USER, PASSWORD_ENV: PASSWORD}
    return make_server(f"pull_through = [{', '.join(rules)}]\n{extra}", env)


CREDENTIALS = {"username_env": USER_ENV, "password_env": PASSWORD_ENV}


def login_args(server: PierServer, side: str = "src") -> list[str]:
    """skopeo's flag to log in to pier (as the source, or the destination)."""
    return [f"--{side}-creds", f"AWS:{password(client(server))}"]


def pull(server: PierServer, repository: str, out: Path, tag: str, *args: str, anonymous: bool = False) -> None:
    """skopeo copy from pier into an OCI layout (logged in unless `anonymous`)."""
    creds = [] if anonymous else login_args(server)
    source = f"docker://{server.host}/{OWNER.alias}/{repository}:{tag}"
    skopeo("copy", "--src-tls-verify=false", *creds, *args, source, f"oci:{out}:{tag}")


def authorized(server: PierServer) -> dict[str, str]:
    """A bearer token of the owner, as docker would hold after logging in."""
    return bearer(server, client(server))


def get(server: PierServer, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> httpx.Response:
    return httpx.request(
        method, f"{server.url}/v2/{OWNER.alias}/{path}", headers=headers or {}, timeout=60, follow_redirects=True
    )
