"""What every bench here shares: the registries under test (pier, distribution 2.8) and the tools that
measure them (wrk, the CPU time and resident memory of a server's whole process tree), and the helpers
that feed pier's API (a signed request replayed by wrk, images put straight into its metadata).

bench/run.py, bench/small.py and the other benches import from here, so that a Pier made by one is the
same class another checks for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import Connection

from tests.server import PierServer, free_port

MIB = 1024 * 1024
NAME = "pierbench/bench"
ACCOUNT = {
    "PIER_ACCOUNT_ID": "123456789012",
    "PIER_ALIAS": "pierbench",
    "PIER_ACCESS_KEY_ID": "AKIABENCH",
    "PIER_SECRET_ACCESS_KEY": "bench-secret-0123456789abcdef",
}


# ---------------------------------------------------------------- the servers


class Registry:
    name = ""
    label = ""  # the server as a report names it
    url = ""
    host = ""
    port = 0
    auth: dict[str, str] = {}

    def pid(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Pier(Registry):
    name = "pier"

    def __init__(self, root: Path, workers: int | str | None = None) -> None:
        """`workers` as `pier serve --workers` takes it (a number or "auto"); None for the default
        `pier serve`: no flag and no PIER_WORKERS (not even one inherited from the shell)."""
        env = {**ACCOUNT, "PIER_LOG_LEVEL": "warning"}
        if workers is None:
            os.environ.pop("PIER_WORKERS", None)  # PierServer starts pier with this environment and `env`
        else:
            env["PIER_WORKERS"] = str(workers)
        self.label = "pier (default)" if workers is None else f"pier --workers {workers}"
        self.server = PierServer(root / f"pier-{workers or 'default'}", None, env, default_workers=workers is None)
        self.server.start()
        self.port, self.url, self.host = self.server.port, self.server.url, "127.0.0.1"
        import boto3

        self.ecr = boto3.client(
            "ecr-public",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCOUNT["PIER_ACCESS_KEY_ID"],
            aws_secret_access_key=ACCOUNT["PIER_SECRET_ACCESS_KEY"],
        )
        self.ecr.create_repository(repositoryName="bench")
        token = self.ecr.get_authorization_token()["authorizationData"]["authorizationToken"]
        basic = base64.b64encode(base64.b64decode(token)).decode()
        reply = Connection("127.0.0.1", self.port).request(
            "GET", "/token", {"Authorization": f"Basic {basic}"}, keep_body=True
        )
        self.auth = {"Authorization": "Bearer " + json.loads(reply.body)["token"]}

    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def stop(self) -> None:
        self.server.stop()


class Distribution(Registry):
    name = label = "distribution"

    def __init__(self, root: Path) -> None:
        if not shutil.which("docker-registry"):
            install("docker-registry")
        self.port, self.host = free_port(), "127.0.0.1"
        self.url = f"http://127.0.0.1:{self.port}"
        storage = root / "distribution"
        storage.mkdir()
        config = root / "distribution.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if Connection(self.host, self.port).request("GET", "/v2/").status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def install(*packages: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", *packages],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


# ---------------------------------------------------------------- measuring


def tree(pid: int) -> list[int]:
    pids, parents = [pid], {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("PPid:"):
                    parents[int(status.parent.name)] = int(line.split()[1])
        except OSError:
            pass
    for child, parent in parents.items():
        if parent in pids and child not in pids:
            pids.append(child)
    return pids


def rss_mib(pid: int) -> float:
    total = 0
    for each in tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for each in tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


class PeakMemory:
    """Samples the process tree's resident memory every 50 ms while in use."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.05)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def wrk(url: str, connections: int, seconds: int, script: Path | None = None) -> dict[str, float]:
    """wrk (2 threads, keep-alive) for `seconds`: requests/s, p50 and p99 in ms, errors (non-2xx/3xx answers
    and socket errors, timeouts included) and the transfer rate in MiB/s."""
    if not shutil.which("wrk"):
        install("wrk")
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
    units = {"B": 1 / MIB, "KB": 1 / 1024, "MB": 1, "GB": 1024}
    found = {q: re.search(rf"^\s+{q}%\s+([\d.]+)([a-z]+)", out, re.MULTILINE) for q in ("50", "99")}
    requests = re.search(r"Requests/sec:\s+([\d.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(requests[1]) if requests else 0.0,
        "p50": float(found["50"][1]) * scale[found["50"][2]] if found["50"] else 0.0,
        "p99": float(found["99"][1]) * scale[found["99"][2]] if found["99"] else 0.0,
        "errors": (float(non_2xx[1]) if non_2xx else 0.0) + (sum(map(int, sockets.groups())) if sockets else 0),
        "mib_s": float(transfer[1]) * units[transfer[2]] if transfer else 0.0,
    }


# ---------------------------------------------------------------- pier's API


def signed_script(pier: Pier, operation: str, payload: dict[str, Any], path: Path) -> Path:
    """A wrk script replaying one SigV4-signed request (valid for 15 minutes, which is enough)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(payload)
    request = AWSRequest(
        "POST",
        pier.url + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"SpencerFrontendService.{operation}"},
    )
    SigV4Auth(
        Credentials(ACCOUNT["PIER_ACCESS_KEY_ID"], ACCOUNT["PIER_SECRET_ACCESS_KEY"]), "ecr-public", "us-east-1"
    ).add_auth(request)
    headers = "".join(f'wrk.headers["{k}"] = {json.dumps(v)}\n' for k, v in request.headers.items())
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{headers}')
    return path


def fill_images(pier: Pier, repository: str, count: int) -> None:
    """Put `count` images straight into pier's metadata (bulk SQL: the bench is about reading pages)."""
    from sqlalchemy import create_engine, insert, select

    from pier.storage import schema

    pier.ecr.create_repository(repositoryName=repository)
    engine = create_engine(f"sqlite:///{pier.server.data_dir / 'pier.db'}", connect_args={"timeout": 60})
    with engine.begin() as conn:
        repo_id = conn.execute(
            select(schema.repositories.c.id).where(schema.repositories.c.name == repository)
        ).scalar_one()
        now = time.time()
        for start in range(0, count, 10_000):
            rows = [
                {
                    "repository_id": repo_id,
                    "digest": "sha256:" + hashlib.sha256(f"{repository}{i}".encode()).hexdigest(),
                    "manifest": b"{}",
                    "media_type": "application/vnd.oci.image.manifest.v1+json",
                    "artifact_media_type": "application/vnd.oci.image.config.v1+json",
                    "artifact_type": None,
                    "subject_digest": None,
                    "size": 1000 + i,
                    "pushed_at": now + i,
                }
                for i in range(start, min(count, start + 10_000))
            ]
            conn.execute(insert(schema.images), rows)
            tags = (
                conn.execute(
                    select(schema.images.c.id).where(
                        schema.images.c.repository_id == repo_id, schema.images.c.size >= 1000 + start
                    )
                )
                .scalars()
                .all()
            )
            conn.execute(
                insert(schema.image_tags),
                [
                    {"repository_id": repo_id, "tag": f"t{image_id}", "image_id": image_id, "created_at": now}
                    for image_id in tags
                ],
            )
    engine.dispose()
