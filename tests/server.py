"""Start and stop real `pier serve` processes for tests (no in-process shortcuts)."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Account:
    id: str
    alias: str
    access_key_id: str
    secret_access_key: str


@dataclass
class PierServer:
    data_dir: Path
    config_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None  # standard error: pier's log lines
    # How clients reach it: https with the CA that signed its certificate (tls_cert in its config), and
    # the name they use (one that resolves to where it listens).
    scheme: str = "http"
    hostname: str = "127.0.0.1"
    ca: Path | None = None
    # Start with pier's own default number of workers (one per core) instead of one process.
    default_workers: bool = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def host(self) -> str:
        name = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{name}:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server's certificate with (boto3 takes `ca` itself)."""
        return ssl.create_default_context(cafile=str(self.ca)) if self.ca is not None else True

    @property
    def out_path(self) -> Path:
        return self.data_dir.parent / f"pier-{self.port}.out"

    def start(self, timeout: float = 30) -> PierServer:
        command = [sys.executable, "-m", "pier", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.config_file is not None:
            command += ["--config", str(self.config_file)]
        self.log_path = self.data_dir.parent / f"pier-{self.port}.log"
        env = {**os.environ, **self.env}
        if not self.default_workers and "PIER_WORKERS" not in env and not self._config_names_workers():
            # One process unless a test asks for more: the default (one per core) is tested in test_workers.py.
            env["PIER_WORKERS"] = "1"
        with open(self.out_path, "ab") as out, open(self.log_path, "ab") as log:  # the child keeps its own
            self.process = subprocess.Popen(command, stdout=out, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pier exited with {self.process.returncode}:\n{self.output()}{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code == 200:
                    if env.get("PIER_WORKERS") != "1":
                        self._wait_for_workers(deadline)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"pier did not become healthy:\n{self.output()}{self.log()}")

    def _wait_for_workers(self, deadline: float) -> None:
        """With several worker processes: until /readyz says all of them serve (each starts listening once its
        own startup is done), so the connections a test or a benchmark makes next are spread over all of them.
        Whatever else /readyz checks is left to the tests that are about it."""
        assert self.process is not None
        checks: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pier exited with {self.process.returncode}:\n{self.output()}{self.log()}")
            try:
                checks = httpx.get(f"{self.url}/readyz", timeout=5, verify=self.verify).json().get("checks", {})
            except (httpx.HTTPError, ValueError):
                checks = {"workers": {}}
            if checks.get("workers", {"status": "ok"}).get("status") == "ok":
                return
            time.sleep(0.05)
        raise RuntimeError(f"not all of pier's workers started: {checks.get('workers')}\n{self.log()}")

    def _config_names_workers(self) -> bool:
        text = self.config_file.read_text() if self.config_file is not None else ""
        return re.search(r"^\s*workers\s*=", text, re.MULTILINE) is not None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def run_cli(self, *args: str, timeout: float = 120) -> str:
        """Run a `pier` subcommand against this server's data dir and config; its standard output."""
        command = [sys.executable, "-m", "pier", *args, "--data-dir", str(self.data_dir)]
        if self.config_file is not None:
            command += ["--config", str(self.config_file)]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=True, env={**os.environ, **self.env}
        )
        return done.stdout

    def log(self) -> str:
        """What pier wrote on standard error: its log lines (one per request, and its events)."""
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def output(self) -> str:
        """What pier wrote on standard output: the banner."""
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""
