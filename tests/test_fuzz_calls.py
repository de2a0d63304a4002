"""Every textbook call, and the Pythonic twins and the Kernel's own methods,
against a few hundred wrong arguments: wrong types, None, floats, bytes,
str, negative and huge ints, bools, handles of the wrong kind, stale
handles from an earlier kernel, made-up ids.  From thread 0, from a VP, and
outside any kernel.

What may happen to a call with one wrong argument (the others good):

  * it raises a KernelError (the runtime refused it: NoSuchObject,
    SegmentationFault, NotPicklable, ...);
  * it raises TypeError, ValueError, OverflowError or LookupError whose
    message starts with the call's name ("LOAD needs an int virtual
    address, not bytes b'hello'"), raised in runtime/ -- the runtime's own
    check, not an operator failing deep inside;
  * or it succeeds: the "wrong" value was valid after all (LOAD(False) is
    LOAD(0)); then its effect is undone so that nothing blocks later.

Anything else -- an AttributeError, a StopIteration, an operator's own
TypeError, a call that hangs -- fails the test.  Afterwards the kernel
still works (the good calls succeed, the invariants hold) and nothing leaks
(the conftest fixture).
"""

import inspect
import os
import random
import threading
import traceback

import pytest

import runtime
from runtime import Kernel
from runtime.bounded_buffer import BoundedBuffer, BufferReader
from runtime.bundle import ALLOCATE_BUNDLE, DEALLOCATE_BUNDLE, Bundle
from runtime.context import current
from runtime.errors import Hang, KernelError, StepLimit, WouldBlock
from runtime.eventcounts import Eventcount, Sequencer
from runtime.locks import Lock
from runtime.memory import AddressSpace
from runtime.config import PART_SETTINGS
from runtime.textbook import (ACQUIRE, ADVANCE, ALLOCATE_BLOCK, ALLOCATE_BOUNDED_BUFFER, ALLOCATE_EVENTCOUNT,
                              ALLOCATE_LOCK, ALLOCATE_SEQUENCER, ALLOCATE_THREAD, AWAIT, CREATE_ADDRESS_SPACE,
                              DEALLOCATE_BOUNDED_BUFFER, DELETE_ADDRESS_SPACE, DESTROY_THREAD, EXIT_THREAD,
                              FREE_BLOCK, LOAD, LOAD_BYTES, MAP, READ, RECEIVE, RELEASE, RSM, SEND, STORE,
                              STORE_BYTES, TICKET, UNMAP)
from runtime.vp import ThreadExit

pytestmark = pytest.mark.timeout(60)

RUNTIME_DIR = os.path.dirname(os.path.abspath(runtime.__file__))
NAMED = (TypeError, ValueError, OverflowError, LookupError)


def nothing():
    return 0


def unpicklables():
    return [lambda: 0, threading.Lock(), (i for i in range(2))]


def scalars():
    """Wrong values of every plain kind (some of them valid in some places)."""
    return [None, True, False, 0.0, 1.5, -2.5, float("nan"), float("inf"), -1, -8, 3, 2 ** 31, 2 ** 63,
            2 ** 64, -(2 ** 63) - 1, 10 ** 30, 1j, "x", "", "rw ", b"hello", b"", bytearray(b"ab"),
            memoryview(b"abcdefgh").cast("q"), [], [1, 2], {}, {"a": 1}, (), (1,), {1}, object(), range(3),
            nothing, print, type, ...] + unpicklables()


class Handles:
    """Good handles for one kernel, and wrong handles to mix in."""

    def __init__(self, k, stale):
        self.k = k
        self.page = 0
        self.addr = 0
        self.lock = ALLOCATE_LOCK("fuzz")
        self.ec = ALLOCATE_EVENTCOUNT("fuzz")
        ADVANCE(self.ec)
        self.seq = ALLOCATE_SEQUENCER("fuzz")
        self.buffer = ALLOCATE_BOUNDED_BUFFER(64, capacity=4096)   # room for any one fuzzed send_many
        self.block = ALLOCATE_BLOCK(k.page_size)          # mapped at page 0 by the caller
        self.spare = ALLOCATE_BLOCK(k.page_size)          # never mapped
        dead = ALLOCATE_BOUNDED_BUFFER(2, capacity=64)
        self.dead_writer, self.dead_reader = dead.writer(), dead.reader()
        DEALLOCATE_BOUNDED_BUFFER(dead)
        self.bundle = ALLOCATE_BUNDLE(2, 8, capacity=256)
        dead_bundle = ALLOCATE_BUNDLE(2, 2, capacity=64)
        DEALLOCATE_BUNDLE(dead_bundle)
        self.wrong = [self.lock, self.ec, self.seq, self.buffer, dead, self.dead_writer, self.dead_reader,
                      self.bundle, dead_bundle,
                      AddressSpace(k.address_space), Lock(1000), Eventcount(1000), Sequencer(1000),
                      BoundedBuffer(0, 10 ** 9), BoundedBuffer(10 ** 6, 1), BoundedBuffer(-1, 3)] + stale

    def values(self):
        return scalars() + self.wrong


def drain(buffer):
    while True:
        try:
            buffer.receive_nowait()
        except (WouldBlock, KernelError):
            return


def big_int(v):
    """An int a buffer would try to reserve that much shared memory for."""
    return is_int(v) and 1 << 20 < v < 1 << 40


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def valid_timeout(v):
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0)


def blocks_when_iterated(v):
    """A buffer or a reader end is an iterable of messages that waits for more."""
    return isinstance(v, (BoundedBuffer, BufferReader, Bundle))


def specs(h, in_vp):
    """(name, function, good arguments, {position: skip(value)}, undo(result, args)).
    name: what the error message may start with ("A/B": either).  skip: the
    values that are right for the position, or would block."""
    k, b = h.k, h.buffer
    me = current().tid
    joiner = current().kernel.join
    s = [
        ("CREATE_ADDRESS_SPACE", CREATE_ADDRESS_SPACE, (None, None), {}, lambda r, a: DELETE_ADDRESS_SPACE(r)),
        ("DELETE_ADDRESS_SPACE", DELETE_ADDRESS_SPACE, (None,), {}, None),
        ("ALLOCATE_BLOCK", ALLOCATE_BLOCK, (k.page_size,), {}, lambda r, a: FREE_BLOCK(r)),
        ("FREE_BLOCK", FREE_BLOCK, (h.spare,), {0: lambda v: v == h.spare}, None),
        ("MAP", MAP, (k.address_space, h.spare, 64, "r"), {}, lambda _, a: UNMAP(a[0], a[2])),
        ("UNMAP", UNMAP, (k.address_space, 999), {0: lambda v: v == k.address_space,
                                                   1: lambda v: is_int(v) and v == h.page}, None),
        ("LOAD", LOAD, (h.addr,), {}, None),
        ("STORE", STORE, (h.addr, 5), {}, None),
        ("RSM", RSM, (h.addr,), {}, None),
        ("LOAD_BYTES", LOAD_BYTES, (h.addr, 16), {}, None),
        ("STORE_BYTES", STORE_BYTES, (h.addr, b"0123456789"), {}, None),
        ("ALLOCATE_THREAD", ALLOCATE_THREAD, (nothing, k.address_space),
         {0: callable, 1: lambda v: v == k.address_space}, lambda r, a: joiner(r)),
        ("DESTROY_THREAD", DESTROY_THREAD, (999,), {0: lambda v: is_int(v) and v == me}, None),
        ("EXIT_THREAD", EXIT_THREAD, (0,), {}, None),
        ("ALLOCATE_LOCK", ALLOCATE_LOCK, (None,), {}, None),
        ("ACQUIRE", ACQUIRE, (h.lock,), {0: lambda v: v is h.lock}, lambda r, a: RELEASE(a[0])),
        ("RELEASE", RELEASE, (h.lock,), {}, None),
        ("ALLOCATE_EVENTCOUNT", ALLOCATE_EVENTCOUNT, (None,), {}, None),
        ("ADVANCE", ADVANCE, (h.ec,), {}, None),
        ("READ", READ, (h.ec,), {}, None),
        ("AWAIT", AWAIT, (h.ec, -1), {1: is_int}, None),
        ("ALLOCATE_SEQUENCER", ALLOCATE_SEQUENCER, (None,), {}, None),
        ("TICKET", TICKET, (h.seq,), {}, None),
        ("ALLOCATE_BOUNDED_BUFFER", ALLOCATE_BOUNDED_BUFFER, (2, 64), {0: big_int, 1: big_int},
         lambda r, a: DEALLOCATE_BOUNDED_BUFFER(r)),
        ("SEND", SEND, (b, b"m"), {}, lambda r, a: drain(b) or drain(h.bundle)),
        ("RECEIVE", RECEIVE, (h.dead_reader,), {0: lambda v: v is b or v is h.bundle}, None),
        ("DEALLOCATE_BOUNDED_BUFFER", DEALLOCATE_BOUNDED_BUFFER, (h.dead_reader,), {0: lambda v: v is b}, None),
        # the Pythonic twins
        ("Lock.acquire", Lock.acquire, (h.lock, None), {0: lambda v: True, 1: valid_timeout},
         lambda r, a: h.lock.release()),
        ("Eventcount.await_/AWAIT", Eventcount.await_, (h.ec, -1, None), {0: lambda v: True, 1: is_int, 2: valid_timeout},
         None),
        ("Eventcount.await_nowait", Eventcount.await_nowait, (h.ec, -1), {0: lambda v: True}, None),
        ("BoundedBuffer.send", BoundedBuffer.send, (b, b"m", None), {0: lambda v: True, 2: valid_timeout},
         lambda r, a: drain(b)),
        ("BoundedBuffer.send_many", BoundedBuffer.send_many, (b, [b"m"], None), {0: lambda v: True,
         1: blocks_when_iterated, 2: valid_timeout}, lambda r, a: drain(b)),
        ("BoundedBuffer.send_into", BoundedBuffer.send_into, (b, 8, lambda view: 0, None),
         {0: lambda v: True, 2: callable, 3: valid_timeout}, lambda r, a: drain(b)),
        ("BoundedBuffer.receive_many", BoundedBuffer.receive_many, (b, None, 0.0),
         {0: lambda v: True, 1: lambda v: is_int(v) and v >= 1, 2: valid_timeout}, None),
        ("BoundedBuffer.receive", BoundedBuffer.receive, (b, 0.0), {0: lambda v: True, 1: valid_timeout}, None),
    ]
    if not in_vp:
        s += [
            ("k.join", k.join, (999, None), {1: valid_timeout}, None),
            ("k.address", k.address, (0, 0), {}, None),
        ]
    return s


def judge(name, fn, args, undo):
    """None if the call behaved, else what went wrong."""
    try:
        result = fn(*args)
    except ThreadExit:
        return None                          # EXIT_THREAD with a status that pickles: it did its job
    except (Hang, StepLimit) as e:           # a controlled run broken by one refused call
        return f"{name}{_short(args)}: {type(e).__name__}: {e}"
    except KernelError:
        return None
    except NAMED + (TimeoutError,) as e:
        frames = traceback.extract_tb(e.__traceback__)
        where = frames[-1].filename if frames else ""
        names = tuple(name.split("/")) + (name.split("/")[0].split(".")[-1],)  # "send_into: ..." names it too
        named = str(e).startswith(names) or isinstance(e, TimeoutError)
        if named and where.startswith(RUNTIME_DIR):
            return None
        return f"{name}{_short(args)}: {type(e).__name__}: {e} (raised in {where}:{frames[-1].lineno})"
    except Exception as e:  # noqa: BLE001 - exactly what the test is looking for
        return f"{name}{_short(args)}: {type(e).__name__}: {e}\n{traceback.format_exc()}"
    # (anything else -- pytest's timeout, Ctrl-C, SystemExit -- goes on up: the test stops)
    if undo is not None:
        undo(result, args)
    return None


def _short(args):
    text = repr(args)
    return text if len(text) < 120 else text[:117] + "..."


def run_batch(h, in_vp, values=None):
    """Every call, one wrong argument at a time.  Returns (calls made, failures)."""
    values = h.values() if values is None else values
    calls, failures = 0, []
    for name, fn, good, skip, undo in specs(h, in_vp):
        for pos in range(len(good)):
            drop = skip.get(pos, lambda v: False)
            for v in values:
                if drop(v):
                    continue
                args = list(good)
                args[pos] = v
                calls += 1
                verdict = judge(name, fn, args, undo)
                if verdict:
                    failures.append(verdict)
    return calls, failures


def still_works(h):
    """The good calls succeed after the batch."""
    STORE(h.addr, 41)
    assert LOAD(h.addr) + 1 == 42
    ACQUIRE(h.lock)
    RELEASE(h.lock)
    before = READ(h.ec)
    ADVANCE(h.ec)
    AWAIT(h.ec, before)
    TICKET(h.seq)
    drain(h.buffer)
    SEND(h.buffer, b"still")
    assert RECEIVE(h.buffer) == b"still"


def vp_batch(h):
    calls, failures = run_batch(h, in_vp=True)
    still_works(h)
    return calls, [f[:400] for f in failures[:10]], len(failures)


def stale_handles():
    """Handles made by an earlier kernel, with ids the next kernel never hands out."""
    with Kernel() as old:
        for _ in range(100):
            ALLOCATE_LOCK()
            ALLOCATE_EVENTCOUNT()
        for _ in range(40):                    # buffer ids: past any the next kernel hands out here
            DEALLOCATE_BOUNDED_BUFFER(ALLOCATE_BOUNDED_BUFFER(1, capacity=8))
        handles = [ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT(), ALLOCATE_SEQUENCER(),
                   ALLOCATE_BOUNDED_BUFFER(2, capacity=64)]
        handles.append(handles[-1].writer())
        handles.append(CREATE_ADDRESS_SPACE())
        handles.append(ALLOCATE_BLOCK(old.page_size))
    return handles


@pytest.mark.parametrize("schedule", [None, "rr"])
def test_wrong_arguments_from_thread_0_and_a_vp_and_outside(schedule):
    """Free running, and a controlled run (each call a step of the schedule)."""
    stale = stale_handles()
    with Kernel(max_threads=16, schedule=schedule) as k:
        h = Handles(k, stale)
        MAP(k.address_space, h.block, h.page, "rw")
        table = specs(h, in_vp=False)
        calls, failures = run_batch(h, in_vp=False)
        assert calls > 2000
        assert not failures, f"{len(failures)} of {calls} calls misbehaved in thread 0:\n" + "\n".join(failures[:20])
        still_works(h)
        k._check_invariants()

        tid = ALLOCATE_THREAD(vp_batch, k.address_space, h)
        vp_calls, vp_failures, n_failed = k.join(tid, timeout=50)
        assert vp_calls > 2000
        assert not n_failed, f"{n_failed} of {vp_calls} calls misbehaved in a VP:\n" + "\n".join(vp_failures)
        still_works(h)
        k._check_invariants()

    # Outside any kernel: the same calls with the same (now stale) handles.
    failures = []
    for name, fn, good, skip, _undo in table:
        for v in [None, "x", 1.5, b"hello", -1, 2 ** 64] + h.wrong[:4]:
            for pos in range(len(good)):
                if skip.get(pos, lambda x: False)(object()):
                    continue                   # a method's `self`: never fuzzed
                args = list(good)
                args[pos] = v
                verdict = judge(name, fn, args, None)
                if verdict:
                    failures.append(verdict)
    assert not failures, "outside a kernel:\n" + "\n".join(failures[:20])


def test_wrong_kernel_options():
    """Kernel(...) refuses a bad option at once, naming it; builds nothing."""
    params = [p for p in inspect.signature(Kernel.__init__).parameters if p not in ("self", "part_settings")]
    failures = []
    for name in sorted(set(params) | set(PART_SETTINGS)):
        for v in scalars():
            try:
                Kernel(**{name: v})
            except NAMED as e:
                if not str(e).startswith("Kernel"):
                    failures.append(f"Kernel({name}={v!r}): {type(e).__name__}: {e}")
            except KernelError:
                pass
            except Exception as e:  # noqa: BLE001
                failures.append(f"Kernel({name}={v!r}): {type(e).__name__}: {e}")
    for typo in ("polcy", "max_lock", "processor", "page"):
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            Kernel(**{typo: 1})
    assert not failures, "\n".join(failures[:20])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_many_random_wrong_arguments():
    """The long run: random mixtures, every argument of a call wrong at once."""
    rng = random.Random(20240611)
    stale = stale_handles()
    with Kernel(max_threads=16) as k:
        h = Handles(k, stale)
        MAP(k.address_space, h.block, h.page, "rw")
        pool = h.values() + [rng.getrandbits(rng.choice((8, 64, 65, 200))) * rng.choice((1, -1))
                             for _ in range(200)] + [os.urandom(rng.randrange(0, 64)) for _ in range(50)]
        failures = []
        for _ in range(60):
            calls, f = run_batch(h, in_vp=False, values=rng.sample(pool, 60))
            failures += f
        for name, fn, good, skip, undo in specs(h, in_vp=False) * 300:
            args = []
            for pos, g in enumerate(good):
                v = rng.choice(pool)
                args.append(g if skip.get(pos, lambda x: False)(v) else v)
            verdict = judge(name, fn, args, undo)
            if verdict:
                failures.append(verdict)
        assert not failures, "\n".join(failures[:20])
        still_works(h)
        k._check_invariants()


def test_a_handle_of_another_kind_is_refused_even_with_the_same_id():
    """Handles are (kind, id); ids of different kinds overlap.  Each call's
    fast path finds its prepared pointer by a key only its own kind has, so
    an eventcount with a lock's id does not take the lock (it used to: the
    lock fast path looked the pointer up by `.id` alone)."""
    with Kernel() as k:
        lock, ec, seq = ALLOCATE_LOCK(), ALLOCATE_EVENTCOUNT(), ALLOCATE_SEQUENCER()
        lock2 = ALLOCATE_LOCK()
        buffer = ALLOCATE_BOUNDED_BUFFER(2, capacity=64)
        ACQUIRE(lock)                         # warm every fast path's prepared pointer
        RELEASE(lock)
        ACQUIRE(lock2)
        RELEASE(lock2)
        ADVANCE(ec)
        TICKET(seq)
        assert (lock.id, lock2.id) == (ec.id, seq.id)
        kinds = {"lock": [lock, lock2], "eventcount": [ec, Eventcount(seq.id)], "sequencer": [seq],
                 "buffer": [buffer]}
        calls = [("ACQUIRE", ACQUIRE, "lock"), ("RELEASE", RELEASE, "lock"), ("ADVANCE", ADVANCE, "eventcount"),
                 ("READ", READ, "eventcount"), ("AWAIT", lambda h: AWAIT(h, -1), "eventcount"),
                 ("TICKET", TICKET, "sequencer"), ("SEND", lambda h: SEND(h, b"x"), "buffer"),
                 ("RECEIVE", RECEIVE, "buffer"), ("DEALLOCATE_BOUNDED_BUFFER", DEALLOCATE_BOUNDED_BUFFER, "buffer")]
        for name, call, right in calls:
            for kind, handles in kinds.items():
                if kind == right:
                    continue
                for handle in handles:
                    with pytest.raises((TypeError, KernelError)) as info:
                        call(handle)
                    assert isinstance(info.value, KernelError) or str(info.value).startswith(name)
        assert not lock.locked() and not lock2.locked()
        assert READ(ec) == 1 and seq.read() == 1
        SEND(buffer, b"still here")
        assert RECEIVE(buffer) == b"still here"
        k._check_invariants()
