"""Escape checks (runtime/audit.py): who maps the kernel's memory, and its permissions.

Questions: is a thread that maps the arena a second time, by name, named
with its tid?  Is a process that is no thread of the kernel named?  Is a
thread with only the mapping it was given left alone (the limit, honestly)?
Are the segments owner-only?"""

import multiprocessing
import os
import time

import pytest

from runtime import Kernel, audit
from runtime.arena import Arena
from runtime.textbook import ALLOCATE_BOUNDED_BUFFER, ALLOCATE_THREAD

pytestmark = pytest.mark.timeout(60)


def attach_and_wait(name, ready, go):
    arena = Arena.attach(name)
    ready.send(b"mapped")
    go.receive()
    arena.close()
    return "done"


def plain_vp(ready, go):
    ready.send(b"here")
    go.receive()
    return "done"


def _outsider(name, conn):
    arena = Arena.attach(name)
    conn.send(os.getpid())
    conn.recv()
    arena.close()


def test_a_thread_that_maps_the_arena_by_name_is_named_and_a_plain_one_is_not():
    with Kernel() as k:
        ready, go = ALLOCATE_BOUNDED_BUFFER(4), ALLOCATE_BOUNDED_BUFFER(4)
        thief = ALLOCATE_THREAD(attach_and_wait, k.address_space, k.arena.name, ready, go)
        honest = ALLOCATE_THREAD(plain_vp, k.address_space, ready, go)
        assert sorted([ready.receive(timeout=10), ready.receive(timeout=10)]) == [b"here", b"mapped"]
        found = audit.audit(k)
        assert [f.tid for f in found] == [thief], found
        assert found[0].mappings == 2 and "by name" in found[0].reason and "attach_and_wait" in str(found[0])
        go.send_many([b"go", b"go"])
        assert k.join(thief, timeout=10) == k.join(honest, timeout=10) == "done"
        assert audit.audit(k) == []


def test_a_process_that_is_no_thread_of_the_kernel_is_an_outsider():
    with Kernel() as k:
        ctx = multiprocessing.get_context("spawn")              # a fresh interpreter: it inherits no mapping
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=_outsider, args=(k.arena.name, theirs))
        p.start()
        try:
            pid = mine.recv()
            found = audit.audit(k)
            assert [(f.pid, f.tid) for f in found] == [(pid, None)], found
            assert "not one of its threads" in found[0].reason
        finally:
            mine.send(b"stop")
            p.join(timeout=20)


def test_the_segments_are_owner_only():
    with Kernel() as k:
        ALLOCATE_BOUNDED_BUFFER(2)
        perms = audit.permissions(k)
        assert {name for name, _, _ in perms} >= {k.arena.name} and len(perms) == 2
        assert all(mode == 0o600 and uid == os.geteuid() for _, mode, uid in perms), perms


def test_the_pools_ready_vps_are_not_outsiders():
    with Kernel(pool=2) as k:
        deadline = time.monotonic() + 20
        while len(k.pool.pids()) < 2 or any(p <= 0 for p in k.pool.pids()):   # observed: the pool is up
            assert time.monotonic() < deadline, "the pool did not start"
            time.sleep(0.005)
        assert audit.audit(k) == []
