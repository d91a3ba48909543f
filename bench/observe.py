"""What request ids, metrics and request logs cost on the hot path: anonymous manifest GETs, with wrk.

    python bench/observe.py [--seconds 10] [--before /path/to/other/checkout/.venv/bin/python]

Starts pier (SQLite + filesystem, a temporary data dir) in each setting below, pushes one small image,
then runs wrk (2 threads, 8 connections, keep-alive) against one manifest for --seconds, three rounds
per setting in turn (so drift on this shared machine spreads over all of them), and prints requests/s,
p50 latency and the CPU time pier spent per request (user + system, from /proc: the steadiest of the
three on a shared machine), each the median of the rounds. Settings:

- before: another checkout's pier (--before: a Python whose `-m pier` is that checkout; e.g. main's
  .venv), which has no request ids, metrics or request logs;
- no access lines: this pier with --log-level warning (ids and metrics, no request line);
- text lines: this pier's default (a request line per request on stderr, sent to /dev/null);
- json lines: --log-format json.

Then, steadier on a shared machine, the middleware alone: in a process of its own per log setting, the
app is called directly (no server, no sockets) for a /v2/ manifest GET that goes through the whole door
(a repository lookup in SQLite, a 404 in the spec's JSON), 1,000 times with web/exchange.py's Observe
and 1,000 times without it, alternating, 7 rounds; the CPU time of the fastest round of each gives
what Observe adds per request.

Installs Debian's wrk when missing. Timings live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.harness import cpu_seconds, wrk
from tests.conftest import OWNER, client, owner_env
from tests.images import OCI_MANIFEST, push_image
from tests.server import free_port


class Server:
    def __init__(self, python: str, root: Path, flags: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ca = None  # plain HTTP (tests.conftest.client reads it)
        command = [python, "-m", "pier", "serve", "--port", str(self.port), "--data-dir", str(root), *flags]
        env = {**os.environ, **owner_env()}
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"pier did not start: {command}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def in_process(log_format: str, level: str) -> None:
    """Print the CPU time per request without and with Observe (see the module's docstring)."""
    import asyncio
    import logging

    from granian.asgi import LifespanProtocol

    from pier import logs
    from pier.app import create_app
    from pier.config import load

    with tempfile.TemporaryDirectory(prefix="pier-observe-") as tmp:
        config = load(env=owner_env(), flags={"data_dir": Path(tmp), "log_format": log_format, "log_level": level})
        logs.configure(config.log_format, config.log_level)
        logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # noqa: SIM115
        app = create_app(config)
        path = f"/v2/{OWNER.alias}/none/manifests/v1"

        def scope() -> dict[str, object]:
            return {
                "type": "http",
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"127.0.0.1:5000"), (b"accept", OCI_MANIFEST.encode())],
                "client": ("127.0.0.1", 5555),
                "server": ("127.0.0.1", 5000),
            }

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: object) -> None:
            pass

        async def measure() -> tuple[float, float]:
            lifespan = LifespanProtocol(app)
            await lifespan.startup()
            await app(scope(), receive, send)  # builds the middleware stack
            full = app.middleware_stack
            bare = full.app.app  # without Starlette's ServerErrorMiddleware and Observe
            best = {"full": float("inf"), "bare": float("inf")}
            for _ in range(7):
                for name, target in (("full", full), ("bare", bare)):
                    started = time.process_time()
                    for _ in range(1000):
                        await target(scope(), receive, send)
                    best[name] = min(best[name], (time.process_time() - started) / 1000 * 1e6)
            await lifespan.shutdown()
            return best["bare"], best["full"] - best["bare"]

        bare, added = asyncio.run(measure())
        print(f"  {log_format}, --log-level {level:8} {bare:5.0f} us/request without Observe, +{added:3.0f} us with it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="a Python whose `-m pier` is the version to compare with")
    parser.add_argument("--in-process", nargs=2, metavar=("FORMAT", "LEVEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process(*args.in_process)
        return
    settings: dict[str, tuple[str, list[str]]] = {}
    if args.before:
        settings["before"] = (args.before, [])
    settings["no access lines"] = (sys.executable, ["--log-level", "warning"])
    settings["text lines"] = (sys.executable, [])
    settings["json lines"] = (sys.executable, ["--log-format", "json"])
    results: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory(prefix="pier-observe-") as tmp:
        servers = {}
        for index, (name, (python, flags)) in enumerate(settings.items()):
            servers[name] = server = Server(python, Path(tmp) / f"data{index}", flags)
            ecr = client(server)  # type: ignore[arg-type]
            ecr.create_repository(repositoryName="bench")
            push_image(ecr, "bench", "v1")
        script = Path(tmp) / "accept.lua"
        script.write_text(f'wrk.headers["Accept"] = {json.dumps(OCI_MANIFEST)}\n')
        try:
            for _ in range(args.rounds):
                for name, server in servers.items():
                    url = f"{server.url}/v2/{OWNER.alias}/bench/manifests/v1"
                    cpu = cpu_seconds(server.process.pid)
                    result = wrk(url, 8, args.seconds, script)
                    served = result["rps"] * args.seconds
                    result["cpu_us"] = (cpu_seconds(server.process.pid) - cpu) / served * 1e6 if served else 0.0
                    results[name].append(result)
        finally:
            for server in servers.values():
                server.stop()
    print(f"anonymous manifest GET, wrk -t2 -c8, {args.seconds} s x {args.rounds} rounds (medians)")
    for name, rounds in results.items():
        rps = statistics.median(r["rps"] for r in rounds)
        p50 = statistics.median(r["p50"] for r in rounds)
        cpu = statistics.median(r["cpu_us"] for r in rounds)
        print(f"  {name:16} {rps:8.0f} requests/s   p50 {p50:6.2f} ms   pier CPU {cpu:6.0f} us/request")
    print("the middleware alone, in process (CPU time, fastest of 7 rounds of 1,000)")
    for log_format, level in (("text", "warning"), ("text", "info"), ("json", "info")):
        subprocess.run([sys.executable, __file__, "--in-process", log_format, level], check=True)


if __name__ == "__main__":
    main()
