"""Beyond one process: three pier processes behind one address behave as one registry; online GC."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import pytest

from tests.backends import Backend
from tests.conftest import OWNER, _write_config, client, owner_env
from tests.images import MIB, config, digest_of, image_manifest, layer, layout_blobs, push_blob, write_layout
from tests.oci.helpers import bearer, password
from tests.oci.test_skopeo import skopeo
from tests.roundrobin import RoundRobin
from tests.server import PierServer, free_port


@pytest.fixture
def cluster(tmp_path: Path, backend: Backend) -> Iterator[tuple[RoundRobin, list[PierServer]]]:
    """Three processes sharing one database and one blob store, behind a round-robin proxy."""
    ports = [free_port() for _ in range(3)]
    proxy = RoundRobin(ports)
    config_file = _write_config(tmp_path / "pier.toml", backend.config() + f'public_url = "{proxy.url}"\n')
    servers = [PierServer(tmp_path / "data", config_file, owner_env(), port=port).start() for port in ports]
    yield proxy, servers
    for server in servers:
        server.stop()
    proxy.close()


def test_three_processes_serve_as_one_registry(cluster: tuple[RoundRobin, list[PierServer]], tmp_path: Path) -> None:
    proxy, _ = cluster
    front_url, host = proxy.url, proxy.url.removeprefix("http://")
    front = SimpleNamespace(url=front_url, host=host)  # what clients see: one address
    ecr = boto3.client(
        "ecr-public",
        endpoint_url=front_url,
        region_name="us-east-1",
        aws_access_key_id=OWNER.access_key_id,
        aws_secret_access_key=OWNER.secret_access_key,
    )
    ecr.create_repository(repositoryName="spread")
    # A token issued by one process is accepted by every other.
    token = bearer(front, ecr)
    assert {httpx.get(f"{front_url}/v2/", headers=token).status_code for _ in range(6)} == {200}

    # skopeo pushes and pulls a multi-layer image through all three.
    layers = [layer({f"file{i}": os.urandom(300_000)}) for i in range(4)]
    config_blob = config(layers=layers)
    manifest = image_manifest(config_blob, layers)
    write_layout(tmp_path / "src", {"v1": manifest}, [config_blob.data, *(b.data for b in layers)])
    target = f"docker://{host}/{OWNER.alias}/spread:v1"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{password(ecr)}", f"oci:{tmp_path}/src:v1", target)
    skopeo("copy", "--src-tls-verify=false", target, f"oci:{tmp_path}/back:v1")
    assert layout_blobs(tmp_path / "back") == layout_blobs(tmp_path / "src")
    assert len({index for _, _, index in proxy.served}) == 3

    # A chunked upload whose chunks land on different processes still yields the right blob.
    data = os.urandom(3 * MIB + 5)
    v2 = f"{front_url}/v2/{OWNER.alias}/spread"
    location = httpx.post(f"{v2}/blobs/uploads/", headers=token).headers["Location"]
    before = len(proxy.served)
    chunk = MIB
    for start in range(0, len(data), chunk):
        end = min(start + chunk, len(data))
        response = httpx.patch(
            location, content=data[start:end], headers={**token, "Content-Range": f"{start}-{end - 1}"}
        )
        assert response.status_code == 202
    patched = {index for method, _, index in proxy.served[before:] if method == "PATCH"}
    assert len(patched) >= 2
    assert httpx.put(location, params={"digest": digest_of(data)}, headers=token).status_code == 201
    assert httpx.get(f"{v2}/blobs/{digest_of(data)}", follow_redirects=True).content == data


def run_gc(server: PierServer, grace: int, *flags: str) -> str:
    return server.run_cli("gc", "--grace-seconds", str(grace), *flags)


def test_gc_while_eight_clients_push(make_server: Any, backend: Backend) -> None:
    grace = 10  # far longer than one push takes, even on a slow machine through the S3 proxy
    server = make_server()
    ecr = client(server)
    ecr.create_repository(repositoryName="busy")
    # Blobs nothing will reference: pushed, then their images deleted.
    doomed = []
    for i in range(3):
        blob = layer({"doomed": f"{i}".encode() * 1000})
        cfg = config(f"doomed{i}")
        push_blob(ecr, "busy", blob.data)
        push_blob(ecr, "busy", cfg.data)
        ecr.put_image(repositoryName="busy", imageManifest=image_manifest(cfg, [blob]).decode(), imageTag=f"d{i}")
        doomed += [blob.digest, cfg.digest]
    ecr.batch_delete_image(repositoryName="busy", imageIds=[{"imageTag": f"d{i}"} for i in range(3)])
    assert "would free 6 blob(s)" in run_gc(server, 0, "--dry-run")
    time.sleep(grace + 0.5)  # now they are older than the grace window

    shared = [layer({"base": b"shared base layer" * 5000}), layer({"lib": b"shared library" * 3000})]
    pushed: list[bytes] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def pusher(n: int) -> None:
        own = client(server)
        try:
            for round_ in range(4):
                mine = layer({f"c{n}r{round_}": os.urandom(20_000)})
                cfg = config(f"c{n}r{round_}", layers=[*shared, mine])
                for blob in [*shared, mine, cfg]:
                    if not own.batch_check_layer_availability(repositoryName="busy", layerDigests=[blob.digest])[
                        "layers"
                    ]:
                        with contextlib.suppress(own.exceptions.LayerAlreadyExistsException):
                            push_blob(own, "busy", blob.data)  # (another client may have beaten us to it)
                manifest = image_manifest(cfg, [*shared, mine])
                own.put_image(repositoryName="busy", imageManifest=manifest.decode(), imageTag=f"c{n}r{round_}")
                pushed.append(manifest)
        except BaseException as error:  # reported below
            failures.append(error)

    def collector() -> None:
        while not stop.is_set():
            run_gc(server, grace)

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    gc_thread.join()
    assert not failures, failures
    assert len(pushed) == 32
    report = run_gc(server, grace)  # and once more, now that nothing runs beside it

    # Every pushed image pulls completely.
    v2 = f"{server.url}/v2/{OWNER.alias}/busy"
    for manifest in pushed:
        got = httpx.get(f"{v2}/manifests/{digest_of(manifest)}", headers={"Accept": json.loads(manifest)["mediaType"]})
        assert got.content == manifest
        document = json.loads(manifest)
        for descriptor in [document["config"], *document["layers"]]:
            blob = httpx.get(f"{v2}/blobs/{descriptor['digest']}", follow_redirects=True)
            assert digest_of(blob.content) == descriptor["digest"]
    # The unreferenced blobs are gone, bytes and all.
    stored = backend.blob_digests(server)
    assert not set(doomed) & set(stored)
    assert ecr.batch_check_layer_availability(repositoryName="busy", layerDigests=doomed)["layers"] == []
    assert "freed" in report
