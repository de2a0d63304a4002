"""The outsider of `vos demo escape`: a fresh interpreter of the same user, no
thread of the kernel, that maps the kernel's main arena by name and reads
every other address space.  Run as `python -m demos._escape_outsider KERNEL_PID`;
prints one JSON line (its pid and what it read), then keeps the arena mapped
until its stdin closes, so that the demo's check can see it."""

import json
import os
import sys

from runtime.arena import Arena

from .escape import find_arena, steal


def run(kernel_pid):
    name = find_arena(kernel_pid)
    arena = Arena.attach(name)
    print(json.dumps({"pid": os.getpid(), "found": steal(name)}), flush=True)
    sys.stdin.read()
    arena.close()


if __name__ == "__main__":
    run(int(sys.argv[1]))
