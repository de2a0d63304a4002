"""A boot program for the lifecycle tests, run as its own process:

    python tests/kernel_child.py START_METHOD [POOL]

It boots a kernel with three CPU-bound threads, waits until all are
RUNNING (with POOL idle pool VPs beside them), prints one JSON line
{"arena": ..., "vps": [pids]} and spins until it
is interrupted, terminated or killed by the test."""

import json
import sys
import time

from runtime import Kernel
from runtime.textbook import ALLOCATE_THREAD


def spin():
    while True:
        pass


def main(method, pool=0):
    with Kernel(start_method=method, pool=pool) as k:
        tids = [ALLOCATE_THREAD(spin, k.address_space) for _ in range(3)]
        while sum(r["state"] == "RUNNING" for r in k.thread_info() if r["tid"] in tids) < 3:
            time.sleep(0.001)
        pids = [r["pid"] for r in k.thread_info() if r["tid"] in tids]
        print(json.dumps({"arena": k.arena.name, "vps": pids}), flush=True)
        while True:
            time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
