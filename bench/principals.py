"""What IAM users cost per request: manifest GETs (anonymous, with an account's token, with a user's
token) and signed API calls (an account's key, a user's key), each from one keep-alive client.

    python bench/principals.py [--requests 3000] [--rounds 3]

Starts pier (SQLite + filesystem, a temporary data dir), pushes one small image, makes a user with
`pier users create` (skipped when this pier has no users, so the same script measures the commit
before them), then sends --requests of each kind, --rounds times, interleaved, and prints the median
round's p50/p99 latency, requests per second and the server's CPU time per request (steadier than
latency on a shared machine). The anonymous manifest GET is the one issue 18 says
must not get slower. Run it here and at the previous commit (PYTHONPATH=<that checkout>/src) to compare.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.client import Connection
from tests.conftest import OWNER, _write_config, client, owner_env
from tests.images import OCI_MANIFEST, push_image
from tests.server import Account, PierServer
from tests.signing import CONTENT_TYPE, TARGET, signed_headers

REPOSITORY = "bench/users"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"],
            "Resource": "*",
        },
        {"Effect": "Allow", "Action": "ecr-public:Describe*", "Resource": "*"},
    ],
}


def bearer(server: PierServer, account: Account) -> dict[str, str]:
    import httpx

    token = client(server, account).get_authorization_token()["authorizationData"]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    answer = httpx.get(f"{server.url}/token", params={"service": server.host}, auth=("AWS", password))
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def make_user(server: PierServer, scratch: Path) -> Account | None:
    policy = scratch / "policy.json"
    policy.write_text(json.dumps(POLICY))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pier", "users", "create", OWNER.id, "bench", "--policy", str(policy), "--json"),
            *("--data-dir", str(server.data_dir), "--config", str(server.config_file)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **server.env},
        check=False,
    )
    if done.returncode != 0:
        return None  # a pier without users
    keys = json.loads(done.stdout)
    return Account(OWNER.id, OWNER.alias, keys["accessKeyId"], keys["secretAccessKey"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    send: Callable[[Connection], int], connection: Connection, count: int, pid: int
) -> tuple[float, float, float, float]:
    """(p50 ms, p99 ms, requests/s, server CPU us/request) of `count` requests sent one after another."""
    times = []
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter()
        status = send(connection)
        times.append(time.perf_counter() - before)
        assert status == 200, status
    elapsed = time.perf_counter() - started
    used = (cpu_seconds(pid) - cpu) / count * 1e6
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000, count / elapsed, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pier-bench-users-") as folder:
        scratch = Path(folder)
        server = PierServer(scratch / "data", _write_config(scratch / "pier.toml"), owner_env()).start()
        try:
            rows = run(server, scratch, args.requests, args.rounds)
        finally:
            server.stop()
    print(f"\n{'request':<42}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'CPU us/req':>12}")
    for name, (p50, p99, rate, cpu) in rows.items():
        print(f"{name:<42}{p50:>9.3f}{p99:>9.3f}{rate:>9.0f}{cpu:>12.0f}")


def run(server: PierServer, scratch: Path, count: int, rounds: int) -> dict[str, tuple[float, float, float, float]]:
    owner = client(server)
    owner.create_repository(repositoryName=REPOSITORY)
    push_image(owner, REPOSITORY, "v1")
    user = make_user(server, scratch)
    path = f"/v2/{OWNER.alias}/{REPOSITORY}/manifests/v1"
    accept = {"Accept": OCI_MANIFEST}
    kinds: dict[str, Callable[[Connection], int]] = {
        "manifest GET, anonymous": lambda c: c.request("GET", path, accept, keep_body=True).status,
    }
    root_token = bearer(server, OWNER)
    kinds["manifest GET, account's bearer token"] = lambda c: (
        c.request("GET", path, {**accept, **root_token}, keep_body=True).status
    )

    def signed_describe(account: Account) -> Callable[[Connection], int]:
        def send(connection: Connection) -> int:
            body = b"{}"
            headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + "DescribeRepositories"}
            signed = signed_headers(server.url, account, body, headers)  # the client sends Host and the length
            signed = {k: v for k, v in signed.items() if k.lower() not in ("host", "content-length")}
            return connection.request("POST", "/", signed, body=body, keep_body=True).status

        return send

    kinds["DescribeRepositories, account's key"] = signed_describe(OWNER)
    if user is not None:
        user_token = bearer(server, user)
        kinds["manifest GET, user's bearer token"] = lambda c: (
            c.request("GET", path, {**accept, **user_token}, keep_body=True).status
        )
        kinds["DescribeRepositories, user's key"] = signed_describe(user)
    assert server.process is not None
    pid = server.process.pid
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in kinds}
    for _ in range(rounds):
        for name, send in kinds.items():
            connection = Connection("127.0.0.1", server.port)
            try:
                measure(send, connection, count // 10, pid)  # warm up
                results[name].append(measure(send, connection, count, pid))
            finally:
                connection.close()
    # Each column's median round.
    return {
        name: tuple(sorted(r[i] for r in found)[len(found) // 2] for i in range(4))  # type: ignore[misc]
        for name, found in results.items()
    }


if __name__ == "__main__":
    main()
