"""workers = "auto": one server process per usable core, by affinity and the cgroup v2 CPU quota; and each
worker on a CPU of its own when they are as many as the CPUs pier may run on (worker_cpu_affinity)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pier.config import ConfigError, load
from pier.cores import cgroup_quota, usable_cores, worker_cpus
from tests.certificates import Authority, ServerFiles
from tests.conftest import client
from tests.server import PierServer
from tests.test_workers import children
from tests.web.test_tls import LOCAL_NAMES, served_by, tls_server


def cgroup_tree(root: Path, limits: dict[str, str]) -> Path:
    """A cgroup v2 hierarchy under `root` (folder -> cpu.max text) and the /proc/self/cgroup naming its
    deepest folder."""
    for folder, text in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(text)
    proc = root.parent / "cgroup"
    proc.write_text(f"0::/{max(limits, key=len)}\n")
    return proc


def test_the_tightest_quota_on_the_way_up_counts(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    proc = cgroup_tree(root, {".": "max 100000\n", "a": "250000 100000\n", "a/b": "max 100000\n"})
    assert cgroup_quota(root, proc) == 2.5
    proc = cgroup_tree(root, {"a": "250000 100000\n", "a/b": "50000 100000\n"})
    assert cgroup_quota(root, proc) == 0.5


def test_no_quota_is_none(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    assert cgroup_quota(root, cgroup_tree(root, {"a": "max 100000\n"})) is None
    v1 = tmp_path / "v1"
    v1.write_text("4:memory:/x\n1:cpu:/\n")
    assert cgroup_quota(root, v1) is None  # cgroup v1 only: no unified hierarchy to read


def test_auto_is_the_usable_cores(tmp_path: Path) -> None:
    cores = usable_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    toml = tmp_path / "pier.toml"
    toml.write_text('workers = "auto"\n')
    assert load(toml, env={}, flags={"data_dir": tmp_path}).workers == cores
    assert load(env={"PIER_WORKERS": "auto"}, flags={"data_dir": tmp_path}).workers == cores
    assert load(env={}, flags={"data_dir": tmp_path, "workers": "auto"}).workers == cores
    assert load(env={"PIER_WORKERS": "auto"}, flags={"data_dir": tmp_path, "workers": "1"}).workers == 1
    with pytest.raises(ConfigError, match="workers"):
        load(env={"PIER_WORKERS": "all"}, flags={"data_dir": tmp_path})


def test_serve_with_auto_starts_a_process_per_usable_core(make_plain_server: Any) -> None:
    server = make_plain_server('workers = "auto"\n')
    assert server.process is not None
    cores = usable_cores()
    assert len(children(server.process.pid)) >= (cores if cores > 1 else 0)


def test_serve_without_a_word_on_workers_uses_every_usable_core(make_plain_server: Any) -> None:
    server = make_plain_server("", default_workers=True)
    assert server.process is not None
    cores = usable_cores()
    assert len(children(server.process.pid)) == (cores if cores > 1 else 0)
    ecr = client(server)
    ecr.create_repository(repositoryName="everywhere")
    assert ecr.describe_repositories()["repositories"][0]["repositoryName"] == "everywhere"


# ---------------------------------------------------------------- each worker on a CPU of its own


def threads_cpus(pid: int) -> list[set[int]]:
    """The CPUs each thread of process `pid` may run on (none if the process has ended)."""
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            found.append(os.sched_getaffinity(int(task.name)))
        except OSError:  # the thread ended meanwhile
            continue
    return found


def workers_cpus(server: PierServer) -> dict[int, set[int]]:
    """Worker pid -> the CPUs its threads may run on (all of its threads, checked to agree); a worker that
    ended while it was looked at (replaced by a reload) is left out."""
    assert server.process is not None
    cpus = {}
    for worker in children(server.process.pid):
        per_thread = threads_cpus(worker)
        if not per_thread:
            continue
        assert all(each == per_thread[0] for each in per_thread), (worker, per_thread)
        cpus[worker] = per_thread[0]
    return cpus


@contextmanager
def allowed(cpus: set[int]) -> Iterator[None]:
    """Processes started meanwhile (from this thread) may run on `cpus` only, as under `taskset`."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def two_cpus() -> set[int]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs a machine with two CPUs")
    return set(cpus[:2])


def test_worker_cpus_are_the_allowed_ones_when_they_match_the_workers() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    assert worker_cpus(len(cpus)) == (cpus if len(cpus) > 1 else None)
    assert worker_cpus(len(cpus) + 1) is None  # more workers than CPUs: the kernel shares them out
    assert worker_cpus(1) is None
    with allowed(two_cpus()):
        assert worker_cpus(2) == sorted(two_cpus())
        assert worker_cpus(3) is None


def test_worker_cpu_affinity_is_auto_or_off(tmp_path: Path) -> None:
    assert load(env={}, flags={"data_dir": tmp_path}).worker_cpu_affinity == "auto"
    assert load(env={"PIER_WORKER_CPU_AFFINITY": "off"}, flags={"data_dir": tmp_path}).worker_cpu_affinity == "off"
    with pytest.raises(ConfigError, match="worker_cpu_affinity must be auto or off"):
        load(env={"PIER_WORKER_CPU_AFFINITY": "sometimes"}, flags={"data_dir": tmp_path})


def test_each_worker_keeps_to_a_cpu_of_its_own(make_plain_server: Any) -> None:
    """Two workers on two CPUs: each worker, every thread of it (Granian's, the event loop, the pools made
    while serving), keeps to one of the two, a different one each; the parent, which only supervises,
    keeps both."""
    cpus = two_cpus()
    with allowed(cpus):
        server = make_plain_server("workers = 2\n")
    ecr = client(server)
    for n in range(8):  # threads the pools start while serving inherit the worker's CPU
        ecr.create_repository(repositoryName=f"pinned{n}")
    assert len(ecr.describe_repositories()["repositories"]) == 8
    pinned = workers_cpus(server)
    assert len(pinned) == 2
    assert sorted(len(each) for each in pinned.values()) == [1, 1]
    assert set.union(*pinned.values()) == cpus
    assert server.process is not None
    assert os.sched_getaffinity(server.process.pid) == cpus
    assert "each worker keeps to a CPU of its own" in server.log()


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ('workers = 2\nworker_cpu_affinity = "off"\n', "turned off"),
        ("workers = 3\n", "more workers than CPUs"),
    ],
)
def test_workers_are_left_free(make_plain_server: Any, config: str, why: str) -> None:
    cpus = two_cpus()
    with allowed(cpus):
        server = make_plain_server(config)
    assert client(server).describe_repositories()["repositories"] == []
    pinned = workers_cpus(server)
    assert pinned and all(each == cpus for each in pinned.values()), why
    assert "each worker keeps to a CPU of its own" not in server.log()


def test_a_worker_started_again_keeps_to_the_cpu_of_the_one_it_replaces(make_plain_server: Any, tmp_path: Path) -> None:
    """A certificate reload (SIGHUP) replaces every worker: the new ones keep to the CPUs the old ones had."""
    cpus = two_cpus()
    first = Authority(tmp_path / "first", "first CA").issue(LOCAL_NAMES)
    second = Authority(tmp_path / "second", "second CA").issue(LOCAL_NAMES)
    live = ServerFiles(tmp_path / "live.crt", tmp_path / "live.key", first.ca)
    shutil.copy(first.cert, live.cert)
    shutil.copy(first.key, live.key)
    with allowed(cpus):
        server = tls_server(make_plain_server, live, "workers = 2\n")
    before = workers_cpus(server)
    assert sorted(len(each) for each in before.values()) == [1, 1]
    shutil.copy(second.cert, live.cert)
    shutil.copy(second.key, live.key)
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    after = workers_cpus(server)
    while not served_by(server, second.ca) or set(after) & set(before) or len(after) != 2:
        assert time.monotonic() < deadline, f"the workers were not replaced:\n{server.log()}"
        time.sleep(0.2)
        after = workers_cpus(server)
    assert sorted(map(sorted, after.values())) == sorted(map(sorted, before.values()))
