"""workers = "auto": one server process per usable core, by affinity and the cgroup v2 CPU quota."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pier.config import ConfigError, load
from pier.cores import cgroup_quota, usable_cores
from tests.conftest import client
from tests.test_workers import children


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
