"""Peak resident memory of pier while a 1 GiB layer is uploaded through the ECR layer API.

    python bench/upload_memory.py [--size-mib 1024] [--part-mib 20] [--workers 1]

Starts its own `pier serve` on a free port with a temporary data dir, uploads random data in parts
(UploadLayerPart takes at most 20 MiB), completes the layer, and prints each process's peak RSS as the
kernel counts it (VmHWM): with --workers N above 1, the parent that supervises and each worker, whose
budget is 150 MiB (issue 14). Not a test: the figure depends on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import tree

from tests.conftest import client, owner_env
from tests.server import PierServer

MIB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--part-mib", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = PierServer(Path(tmp) / "data", None, {**owner_env(), "PIER_WORKERS": str(args.workers)}).start()
        try:
            assert server.process is not None
            ecr = client(server)
            ecr.create_repository(repositoryName="bench/big")
            processes = tree(server.process.pid)  # pier serve; with --workers N above 1, its workers after it
            idle = [peak_rss_mib(pid) for pid in processes]
            upload_id = ecr.initiate_layer_upload(repositoryName="bench/big")["uploadId"]
            digest = hashlib.sha256()
            chunk = os.urandom(args.part_mib * MIB)
            started = time.perf_counter()
            for index in range(args.size_mib // args.part_mib + (1 if args.size_mib % args.part_mib else 0)):
                part = chunk[: min(args.part_mib, args.size_mib - index * args.part_mib) * MIB]
                first = index * args.part_mib * MIB
                ecr.upload_layer_part(
                    repositoryName="bench/big",
                    uploadId=upload_id,
                    partFirstByte=first,
                    partLastByte=first + len(part) - 1,
                    layerPartBlob=part,
                )
                digest.update(part)
            ecr.complete_layer_upload(
                repositoryName="bench/big", uploadId=upload_id, layerDigests=["sha256:" + digest.hexdigest()]
            )
            elapsed = time.perf_counter() - started
            peak = [peak_rss_mib(pid) for pid in processes]
            print(
                f"uploaded {args.size_mib} MiB in {args.part_mib} MiB parts in {elapsed:.1f} s "
                f"({args.size_mib / elapsed:.0f} MiB/s through the JSON API)"
            )
            for n, (before, after) in enumerate(zip(idle, peak, strict=True)):
                who = "pier serve" if n == 0 else f"worker {n}"
                budget = "target < 150 MiB per worker"
                print(f"{who} resident memory: idle {before:.0f} MiB, peak {after:.0f} MiB ({budget})")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
