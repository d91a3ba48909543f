"""A private Docker engine for the tests: Debian's dockerd on its own socket, data root and exec root.

    dockerd --storage-driver vfs --iptables=false --ip6tables=false --bridge=none
            --data-root D --exec-root E -H unix://SOCK --pidfile P

It touches nothing of the machine's (no network setup, no /var/lib/docker, no /run/docker.sock), so it
runs beside any other engine, and it stops with the session. The docker CLI talks to it with
DOCKER_HOST=unix://SOCK, DOCKER_BUILDKIT=0 (the classic builder: `FROM scratch` builds need nothing
else) and a DOCKER_CONFIG of its own, so no login leaks in or out. 127.0.0.0/8 is an insecure registry
by default, so plain-HTTP pier servers on loopback work as they are.

Use the `docker` fixture (registered in tests/conftest.py). If dockerd is not installed or cannot run
here, every test that asks for it is skipped, saying why; scripts/test installs Debian's docker.io.
private_engine(storage_driver) starts another engine, on another storage driver where it runs (image
builds, which copy the whole tree at every step on vfs, use overlay2; tests/test_container.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 60.0
COMMAND_TIMEOUT = 180.0


@dataclass(frozen=True)
class DockerCli:
    """The docker CLI against the private engine, with its own config dir (its logins)."""

    socket: Path
    config_dir: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return {
            **env,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_BUILDKIT": "0",
            "DOCKER_CONFIG": str(self.config_dir),
            "DOCKER_CLI_HINTS": "false",
        }

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker <args>`; with check, a failure raises with everything docker printed."""
        done = subprocess.run(
            ["docker", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def run_bytes(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> bytes:
        """What `docker <args>` writes to its standard output, as bytes (`docker cp ... -` writes a tar)."""
        done = subprocess.run(["docker", *args], capture_output=True, env=self.env(), timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stderr.decode()}")
        return done.stdout

    def with_config(self, config_dir: Path) -> DockerCli:
        """The same engine with another config dir (another set of logins)."""
        config_dir.mkdir(parents=True, exist_ok=True)
        return DockerCli(self.socket, config_dir)


class Dockerd:
    def __init__(self, root: Path, storage_driver: str = "vfs") -> None:
        self.root = root
        self.storage_driver = storage_driver
        self.socket = root / "docker.sock"
        self.log_path = root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, skip: bool = True) -> None:
        """Start the engine and wait until it answers; pytest.skip (saying why) if it cannot run here, or with
        skip=False, RuntimeError (to try another way)."""
        binary = shutil.which("dockerd")
        if binary is None or shutil.which("docker") is None:
            pytest.skip("dockerd or the docker CLI is not installed (scripts/test installs Debian's docker.io)")
        command = [
            binary,
            "--storage-driver",
            self.storage_driver,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "-H",
            f"unix://{self.socket}",
            "--pidfile",
            str(self.root / "dockerd.pid"),
        ]
        with open(self.log_path, "ab") as log:
            # Its own session: containerd and the shims it starts go with it at stop().
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        cli = DockerCli(self.socket, self.root / "config")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                self._give_up(f"dockerd cannot run here (it exited {code}):\n{self._log_tail()}", skip)
            if self.socket.exists() and cli.run("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        self._give_up(f"dockerd did not answer within {START_TIMEOUT:.0f} s:\n{self._log_tail()}", skip)

    @staticmethod
    def _give_up(why: str, skip: bool) -> None:
        if skip:
            pytest.skip(why)
        raise RuntimeError(why)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # Whatever it started and left (containerd, shims) was in its session, whose id is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self.process = None
        # dockerd leaves mounts under its roots (its data root bound on itself, exec/netns/default), which
        # keep the folder from being removed: unmount them, deepest first.
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{self.root}/")]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True, check=False)

    def _log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-15:])


@contextlib.contextmanager
def private_engine(storage_driver: str = "vfs") -> Iterator[DockerCli]:
    """The docker CLI against a private dockerd of its own, on `storage_driver` if it runs here, else on vfs."""
    # A short path: the engine's sockets (containerd's under the exec root) must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pier-docker-"))
    engine = Dockerd(root, storage_driver)
    try:
        try:
            engine.start(skip=storage_driver == "vfs")
        except RuntimeError:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            engine = Dockerd(root)
            engine.start()
        (root / "config").mkdir(exist_ok=True)
        yield DockerCli(engine.socket, root / "config")
    finally:
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker() -> Iterator[DockerCli]:
    """The docker CLI, against a private dockerd (vfs) started once for the session."""
    with private_engine() as cli:
        yield cli
