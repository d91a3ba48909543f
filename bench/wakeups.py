"""What waking a thread costs here, on one CPU and across two: why pier keeps each worker to a CPU.

    python bench/wakeups.py [--rounds 20000]

Two threads hand a turn back and forth through a pair of queues (a lock and a futex each way, as the
event loop and its thread pools do), first both on one CPU, then on two different CPUs, then where the
kernel puts them. Prints the wall time and the CPU time (both threads) per round trip. On the 2-CPU virtual
machine of bench/notes.md (round 8) a cross-CPU wakeup cost several times a same-CPU one, which is why
`pier serve` pins each of its workers (all its threads) to a CPU of its own when it can (src/pier/cores.py).
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
import time


def ping_pong(rounds: int, cpus: tuple[int, int] | None) -> tuple[float, float]:
    """(wall us, CPU us) per round trip between two threads, each kept to its CPU if `cpus` is given."""
    there: queue.SimpleQueue[int] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def other() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, {cpus[1]})
        for _ in range(rounds):
            back.put(there.get())

    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[0]})
    try:
        thread = threading.Thread(target=other)
        thread.start()
        wall, cpu = time.perf_counter(), time.process_time()
        for n in range(rounds):
            there.put(n)
            back.get()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        thread.join()
    finally:
        os.sched_setaffinity(0, before)
    return wall / rounds * 1e6, cpu / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    allowed = sorted(os.sched_getaffinity(0))
    cases: list[tuple[str, tuple[int, int] | None]] = [("one CPU", (allowed[0], allowed[0]))]
    if len(allowed) > 1:
        cases.append(("two CPUs", (allowed[0], allowed[1])))
    cases.append(("where the kernel puts them", None))
    for label, cpus in cases:
        ping_pong(1000, cpus)  # warm up
        wall, cpu = ping_pong(args.rounds, cpus)
        print(f"{label:28s} round trip: {wall:6.1f} us wall, {cpu:6.1f} us CPU")


if __name__ == "__main__":
    main()
