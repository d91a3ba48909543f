"""How many cores this process may use: what `workers = "auto"` starts one server process for each of.

The CPUs the scheduler lets it run on (its affinity: taskset, cpusets), and no more than its cgroup v2
CPU quota allows (cpu.max of its cgroup and of every cgroup above it, as docker --cpus and Kubernetes CPU
limits set it), rounded up; at least 1.

And which CPU each worker keeps to (worker_cpus): when the workers are exactly as many as the CPUs the
process may run on, each is pinned to one of them, with all its threads. A request hops between a worker's
threads a dozen times (Granian's I/O threads, its thread that hands results to Python, the event loop, the
thread pools), and waking a thread on another CPU costs several times what waking it on the same one does:
measured on a 2-CPU virtual machine, a futex round trip costs 26 us of CPU across CPUs and 5.5 us on one
(bench/wakeups.py), and the 16-client image pushes went from 1.91x to 2.76x distribution's rate pinned
(bench/notes.md, round 8); one big push in one worker runs ~17% slower. The workers share the GIL-bound
work evenly anyway (each is one event loop). With more CPUs allowed than workers (a cgroup quota below the
affinity, as Kubernetes CPU limits leave it), nothing is pinned: the workers would crowd the first CPUs of
a machine other processes use too.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The tightest cpu.max quota (in CPUs) on the way from this process's cgroup up to the root; None
    when there is none (cgroup v1, no limit, or nothing readable)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    tightest: float | None = None
    folder = root / relative.strip("/")
    while True:
        limit = _cpu_max(folder / "cpu.max")
        if limit is not None:
            tightest = limit if tightest is None else min(tightest, limit)
        if folder == root or root not in folder.parents:
            return tightest
        folder = folder.parent


def _cpu_max(path: Path) -> float | None:
    """`<quota> <period>` in microseconds, or `max <period>` for no limit."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)


def worker_cpus(workers: int) -> list[int] | None:
    """The CPU the i-th of `workers` server processes is pinned to, or None to leave them all free: they are
    pinned only when there are at least two and exactly as many as the CPUs this process may run on."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None
    if workers < 2 or len(allowed) != workers:
        return None
    return allowed
