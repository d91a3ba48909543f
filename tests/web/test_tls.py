"""TLS on the one port: skopeo, boto3, the awscli and docker against `pier serve --tls-cert --tls-key`,
with a CA made here; and SIGHUP, which reloads the certificate without dropping a connection.

docker treats every registry in 127.0.0.0/8 as insecure (and then ignores certs.d), so its test serves
pier on ::1 under a name this test gives ::1 in /etc/hosts, with the CA where dockerd looks for it,
/etc/docker/certs.d/<name>:<port>/ca.crt (both removed afterwards; the tests run as root).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.certificates import Authority, ServerFiles
from tests.conftest import OWNER, aws_cli, client
from tests.dockerd import DockerCli
from tests.images import layout_blobs
from tests.oci.helpers import password
from tests.oci.test_docker import build, hello, login, push
from tests.oci.test_skopeo import single_image_layout, skopeo
from tests.server import PierServer, free_port

LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"]
CERTS_D = Path("/etc/docker/certs.d")
SERVE = [sys.executable, "-m", "pier", "serve"]


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "ca", "pier test CA")


def tls_config(files: ServerFiles, extra: str = "") -> str:
    return f'tls_cert = "{files.cert}"\ntls_key = "{files.key}"\n{extra}'


def tls_server(make_server: Callable[..., PierServer], files: ServerFiles, extra: str = "") -> PierServer:
    return make_server(tls_config(files, extra), scheme="https", ca=files.ca)


def test_boto3_the_awscli_and_skopeo_over_tls(
    make_server: Callable[..., PierServer], authority: Authority, tmp_path: Path
) -> None:
    files = authority.issue(LOCAL_NAMES)
    assert files.cert.read_text().count("BEGIN CERTIFICATE") == 2  # the server's and the intermediate's
    server = tls_server(make_server, files)
    assert server.url.startswith("https://")

    # boto3 trusts the CA it is given, and nothing else.
    ecr = client(server)
    repository = ecr.create_repository(repositoryName="tls/hello")["repository"]
    assert repository["repositoryUri"] == f"{server.host}/{OWNER.alias}/tls/hello"
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        client(server, verify=True).describe_repositories()
    described = aws_cli(server, "describe-repositories")  # the awscli with --ca-bundle
    assert described.returncode == 0, described.stderr
    assert "tls/hello" in described.stdout

    # The token realm follows the public URL, and a request knows it came over TLS (its Location is https).
    challenge = httpx.get(f"{server.url}/v2/", verify=server.verify)
    assert f'realm="https://{server.host}/token"' in challenge.headers["www-authenticate"]
    auth = ("AWS", password(ecr))
    started = httpx.post(f"{server.url}/v2/{OWNER.alias}/tls/hello/blobs/uploads/", auth=auth, verify=server.verify)
    assert started.status_code == 202 and started.headers["location"].startswith(f"https://{server.host}/")

    # skopeo pushes and pulls with the CA in --cert-dir.
    cert_dir = tmp_path / "skopeo-certs"
    cert_dir.mkdir()
    shutil.copy(files.ca, cert_dir / "ca.crt")
    single_image_layout(tmp_path / "src")
    target = f"docker://{server.host}/{OWNER.alias}/tls/hello:v1"
    skopeo(
        "copy",
        "--dest-cert-dir",
        str(cert_dir),
        "--dest-creds",
        f"AWS:{password(ecr)}",
        f"oci:{tmp_path}/src:v1",
        target,
    )
    skopeo("copy", "--src-cert-dir", str(cert_dir), target, f"oci:{tmp_path}/back:v1")
    assert layout_blobs(tmp_path / "back") == layout_blobs(tmp_path / "src")
    refused = skopeo("inspect", target, check=False)  # without the CA: refused
    assert refused.returncode != 0 and "certificate" in refused.stderr


def test_a_certificate_that_does_not_load_stops_the_start(authority: Authority, tmp_path: Path) -> None:
    files = authority.issue(LOCAL_NAMES)
    other = authority.issue(LOCAL_NAMES, stem="other")
    for cert, key in ((files.cert, other.key), (tmp_path / "missing.crt", files.key)):
        flags = ["--data-dir", str(tmp_path / "data"), "--port", str(free_port())]
        done = subprocess.run(
            [*SERVE, *flags, "--tls-cert", str(cert), "--tls-key", str(key)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0
        assert "tls_cert" in done.stderr, done.stderr


class SlowDownload:
    """A blob GET read a little at a time, so it is still in flight while the test does other things."""

    def __init__(self, server: PierServer, path: str) -> None:
        self.client = httpx.Client(verify=server.verify, timeout=60)
        self.stream = self.client.stream("GET", f"{server.url}{path}")
        self.response = self.stream.__enter__()
        self.chunks = self.response.iter_raw(64 * 1024)
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            chunk = next(self.chunks, b"")
            self.hash.update(chunk)
            self.size += len(chunk)
            time.sleep(0.01)

    def finish(self) -> str:
        for chunk in self.chunks:
            self.hash.update(chunk)
            self.size += len(chunk)
        self.stream.__exit__(None, None, None)
        self.client.close()
        return f"sha256:{self.hash.hexdigest()}"


def served_by(server: PierServer, ca: Path) -> bool:
    """Whether a new connection to the server is served a certificate this CA signed."""
    try:
        return httpx.get(f"{server.url}/healthz", verify=ssl.create_default_context(cafile=str(ca))).is_success
    except httpx.ConnectError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_serves_a_new_certificate_without_dropping_a_download(
    make_plain_server: Callable[..., PierServer], tmp_path: Path, workers: int
) -> None:
    first = Authority(tmp_path / "first", "first CA").issue(LOCAL_NAMES)
    second = Authority(tmp_path / "second", "second CA").issue(LOCAL_NAMES)
    live = ServerFiles(tmp_path / "live.crt", tmp_path / "live.key", first.ca)
    shutil.copy(first.cert, live.cert)
    shutil.copy(first.key, live.key)
    server = tls_server(make_plain_server, live, f"workers = {workers}\n")
    ecr = client(server)
    ecr.create_repository(repositoryName="reload")
    data = os.urandom(48 * 1024 * 1024)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    pushed = httpx.post(
        f"{server.url}/v2/{OWNER.alias}/reload/blobs/uploads/?digest={digest}",
        content=data,
        auth=("AWS", password(ecr)),
        verify=server.verify,
        timeout=120,
    )
    assert pushed.status_code == 201, pushed.text

    download = SlowDownload(server, f"/v2/{OWNER.alias}/reload/blobs/{digest}")
    download.read(0.5)
    assert download.response.status_code == 200 and 0 < download.size < len(data)
    shutil.copy(second.cert, live.cert)
    shutil.copy(second.key, live.key)
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while not served_by(server, second.ca):
        assert time.monotonic() < deadline, f"the new certificate is not served:\n{server.log()}"
        download.read(0.2)
    assert download.finish() == digest and download.size == len(data)  # the download in flight went on

    # A certificate that does not load is not reloaded: pier goes on serving the one it has.
    live.cert.write_text("not a certificate\n")
    server.process.send_signal(signal.SIGHUP)
    time.sleep(2)
    assert server.process.poll() is None
    assert served_by(server, second.ca)
    assert "the certificate is not reloaded" in server.log()


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_without_tls_is_ignored(make_plain_server: Callable[..., PierServer], workers: int) -> None:
    server = make_plain_server(f"workers = {workers}\n")
    assert server.process is not None
    for _ in range(2):
        server.process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
    assert server.process.poll() is None
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert server.log().count("SIGHUP ignored") == 2


@pytest.fixture(scope="session")
def ipv6_name() -> Iterator[str]:
    """A name for ::1 in /etc/hosts, for this session only (dockerd reads the file again every few
    seconds: see docker_login)."""
    name = f"pier-{uuid.uuid4().hex[:10]}.test"
    line = f"::1 {name}\n"
    hosts = Path("/etc/hosts")
    try:
        text = hosts.read_text()
        hosts.write_text(text + ("" if text.endswith("\n") or not text else "\n") + line)
    except PermissionError:
        pytest.skip("cannot give ::1 a name in /etc/hosts (run as root)")
    try:
        yield name
    finally:
        kept = [entry for entry in hosts.read_text().splitlines(keepends=True) if entry != line]
        hosts.write_text("".join(kept))


def test_docker_logs_in_pushes_and_pulls_over_tls(
    make_server: Callable[..., PierServer],
    docker: DockerCli,
    authority: Authority,
    ipv6_name: str,
    tmp_path: Path,
) -> None:
    files = authority.issue([ipv6_name, *LOCAL_NAMES])
    port = free_port()
    host = f"{ipv6_name}:{port}"
    certs = CERTS_D / host
    certs.mkdir(parents=True)
    try:
        shutil.copy(files.ca, certs / "ca.crt")
        server = make_server(
            tls_config(files, f'host = "::1"\npublic_url = "https://{host}"\n'),
            scheme="https",
            hostname=ipv6_name,
            ca=files.ca,
            port=port,
        )
        assert server.host == host
        ecr = client(server)
        uri = ecr.create_repository(repositoryName="tls/docker")["repository"]["repositoryUri"]
        assert uri == f"{host}/{OWNER.alias}/tls/docker"
        cli = docker.with_config(tmp_path / "docker-config")
        content = f"hello over TLS {uuid.uuid4()}"
        build(cli, tmp_path, f"{uri}:v1", content)
        docker_login(cli, server)
        digest, _ = push(cli, f"{uri}:v1")
        assert ecr.describe_images(repositoryName="tls/docker")["imageDetails"][0]["imageDigest"] == digest
        cli.run("logout", host)
        cli.run("rmi", f"{uri}:v1")
        cli.run("pull", f"{uri}@{digest}")  # anonymously, over TLS
        assert hello(cli, f"{uri}@{digest}") == content
        cli.run("rmi", f"{uri}@{digest}")
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def docker_login(cli: DockerCli, server: PierServer) -> None:
    """docker login, once dockerd resolves the name: Go keeps /etc/hosts for 5 seconds after reading it."""
    deadline = time.monotonic() + 15
    while True:
        try:
            login(cli, server)
            return
        except AssertionError as failure:
            if "no such host" not in str(failure) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_renewals_keep_only_the_last_copies_even_after_one_failed(authority: Authority, tmp_path: Path) -> None:
    from pier import tls

    files = authority.issue(["localhost"])
    certificates = tls.Certificates(str(files.cert), str(files.key), tmp_path / "data")
    try:
        good = files.cert.read_bytes()
        files.cert.write_bytes(b"not a certificate")
        assert not certificates.renew()  # a generation whose copy failed: it leaves no folder
        files.cert.write_bytes(good)
        for _ in range(2 * tls.KEPT_GENERATIONS):
            assert certificates.renew()
        kept = sorted(int(folder.name) for folder in certificates.directory.iterdir())
        assert kept == list(range(certificates.generation - tls.KEPT_GENERATIONS + 1, certificates.generation + 1))
    finally:
        certificates.close()
