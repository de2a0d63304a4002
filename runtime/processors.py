"""Processors: n threads multiplexed on m virtual processors (复用).

`Kernel(processors=m)` lets at most m threads run at once; the others are
RUNNABLE and wait in line.  The line is a ticket queue in shared memory, the
same idea as the lecture's TICKET/AWAIT, built from two counters that only grow:

    tickets    taken by a thread that wants a processor (fetch_add)
    releases   bumped by a thread that gives its processor up

Ticket t is *admitted* (may run) once  t < m + releases.  So admission is FIFO,
and a thread that gives its processor up and asks again goes to the back of the
line: round robin.  Nothing here needs a lock, so a thread that dies anywhere
cannot wedge the dispatcher; its burier gives back the processor it held.

How the processor changes hands:
  * a blocking call (ACQUIRE, AWAIT, SEND on a full buffer, join) releases the
    processor before it sleeps and takes a new ticket when it wakes;
  * YIELD (自觉出让) releases and re-queues at once, if anyone is waiting;
  * the clock interrupt (时钟中断): every VP arms a real interval timer
    (SIGALRM every `quantum` seconds).  Its handler runs inside the VP between
    two Python bytecodes; if another thread waits for a processor the handler
    preempts this one: release, re-queue, wait.  That is an involuntary switch.

Wake-ups are precise: ring[t % R] records which thread holds ticket t, and a
releaser wakes only the thread whose ticket it admits (its `wake` word).  A
waiter publishes itself in the ring *before* it checks admission, and a
releaser bumps `releases` *before* it reads the ring, so one of the two always
sees the other (no lost wake-up); every wait also has a timeout.

A thread killed anywhere gives its processor back.  Taking a ticket is one
fetch_add and recording it in the thread entry is a second store, so a VP can
be killed between the two (SIGKILL cannot be blocked).  So a thread first
marks its entry TAKING, then takes the ticket, then records it.  A burier
that finds a dead thread TAKING does not know whether it took one, and
counts instead (`recover`): every ticket taken and not given back is held
or awaited by exactly one entry that records it, so

    leaked = (tickets - releases) - (entries recording a ticket)

read while no live thread is TAKING and no ticket was taken meanwhile.  To
keep the count on the safe side while others come and go, everyone who
gives a ticket back bumps `releases` *before* clearing its record (seen in
between: one leak too few, never one too many), and the count reads
`tickets` before the scan and `releases` after it.  Recoveries are
serialised by the `recovering` mutex word (mutex.py: a recoverer that dies
leaves it owner-died, and the next one proceeds).  When live threads keep
being in the window, the recovery is left to the next waiter that sleeps a
whole slice (`suspect` flag).

Section layout (guard: all atomic, no lock):

    off   size  field
      0      8  tickets    fetch_add by a thread that wants a processor
      8      8  releases   fetch_add by a thread (or its burier) giving one up
     16      8  m          written once at boot (0 = no limit)
     24      8  recovering mutex word: serialises `recover` (mutex.py)
     32      8  suspect    1 while a leaked ticket may be unrecovered; any process
     64  8 * R  ring       ring[t % R] = tid holding ticket t; written by that thread

A thread entry's `ticket` field (threads.py) is -1 (none), TAKING (-2: about
to take one), or the ticket it holds or waits with; written by the thread
itself, and by its burier once it is dead.
"""

import os
import struct
import time

from . import atomics
from . import mutex
from .threads import (FLAG_ON_CPU, LIVE, O_FLAGS, O_PID, O_RUN, O_STATE, O_TICKET, O_TID, O_WAIT_KIND, O_WAKE,
                      RUNNABLE, RUNNING, WAIT_PROCESSOR, pid_alive)

O_TICKETS, O_RELEASES, O_M, O_RECOVERING, O_SUSPECT, O_RING = 0, 8, 16, 24, 32, 64
NONE, TAKING = -1, -2
_i64 = struct.Struct("<q")


class Processors:
    """The processor dispatcher.  Methods run in the thread's own process."""

    def __init__(self, arena, offset, threads, count):
        self.buf = arena.buf
        self.base = offset
        self.addr = arena.addr + offset
        self.threads = threads
        self.ring = 2 * threads.n
        self.m = count or 0
        self.limited = bool(count)

    @staticmethod
    def section_size(max_threads):
        return O_RING + 8 * 2 * max_threads

    def boot(self):
        _i64.pack_into(self.buf, self.base + O_M, self.m)

    # --- the two halves of a switch ---------------------------------------------

    def acquire(self, tid, timeout_check):
        """Wait in line for a processor, then hold it (state RUNNING).
        `timeout_check()` runs every half second while waiting (kernel alive?)."""
        t = self.threads
        o = t.off(tid)
        if not self.limited or tid == 0:  # thread 0, the console, runs outside the limit
            t.put32(o + O_STATE, RUNNING)
            return
        t.put32(o + O_STATE, RUNNABLE)
        t.put32(o + O_WAIT_KIND, WAIT_PROCESSOR)
        t.put32(o + O_WAKE, 0)
        t.put64(o + O_TICKET, TAKING)       # killed from here ...
        ticket = atomics.fetch_add(self.addr + O_TICKETS, 1)
        t.put64(o + O_TICKET, ticket)       # ... to here: recover() finds the ticket
        atomics.store(self.addr + O_RING + 8 * (ticket % self.ring), tid)
        wake = t.addr + (o - t.base) + O_WAKE
        while ticket >= self.m + atomics.load(self.addr + O_RELEASES):
            t0 = time.monotonic()
            atomics.futex_wait(wake, 0, 0.5)
            t.put32(o + O_WAKE, 0)
            timeout_check()
            if time.monotonic() - t0 >= 0.45 and atomics.load(self.addr + O_SUSPECT):
                self.recover(tid)
        atomics.fetch_or(t.addr + (o - t.base) + O_FLAGS, FLAG_ON_CPU)
        t.put32(o + O_WAIT_KIND, 0)
        t.put32(o + O_STATE, RUNNING)

    def release(self, tid, state=RUNNABLE):
        """Give the processor up (the caller then sleeps or re-queues).  The
        caller's state becomes `state`."""
        t = self.threads
        o = t.off(tid)
        t.put32(o + O_STATE, state)
        if not self.limited or tid == 0:
            return
        atomics.fetch_and(t.addr + (o - t.base) + O_FLAGS, ~FLAG_ON_CPU)
        self._give_back()                   # before clearing the record (see recover)
        t.put64(o + O_TICKET, NONE)

    def _give_back(self):
        releases = atomics.fetch_add(self.addr + O_RELEASES, 1) + 1
        admitted = self.m + releases - 1
        if admitted < atomics.load(self.addr + O_TICKETS):
            waiter = atomics.load(self.addr + O_RING + 8 * (admitted % self.ring))
            t = self.threads
            wo = t.slot_off(waiter % t.n, O_WAKE)
            t.put32(wo, 1)
            atomics.futex_wake(t.addr + (wo - t.base), 1)

    def contended(self):
        """Does some thread wait for a processor?  A lock-free hint."""
        if not self.limited:
            return False
        tickets, releases = struct.unpack_from("<qq", self.buf, self.base)
        return tickets > self.m + releases

    def release_for_dead(self, tid, burier=0):
        """A burier gives back whatever processor or ticket a dead thread had,
        also when it died between taking a ticket and recording it."""
        t = self.threads
        o = t.off(tid)
        if not self.limited:
            return
        ticket = t.get64(o + O_TICKET)
        if ticket >= 0:
            atomics.fetch_and(t.addr + (o - t.base) + O_FLAGS, ~FLAG_ON_CPU)
            self._give_back()
            t.put64(o + O_TICKET, NONE)
        elif ticket == TAKING:
            atomics.store(self.addr + O_SUSPECT, 1)
            self.recover(burier, dead=tid)

    def recover(self, me, dead=None, patience=1.0):
        """Give back the tickets that no entry records (module doc).  Any
        process; `me` is the caller's tid (for the mutex).  Returns how many
        it gave back.  Leaves `suspect` set if live threads kept being in
        the window for `patience` seconds (a later waiter tries again)."""
        t = self.threads
        word = self.addr + O_RECOVERING
        mutex.acquire(word, me, t)          # owner-died is fine: the count is redone from scratch
        try:
            deadline = time.monotonic() + patience
            while True:
                leaked = self._count_leaked(dead)
                if leaked is not None:
                    break
                if time.monotonic() > deadline:
                    return 0
                os.sched_yield()
            if dead is not None:
                t.put64(t.off(dead, O_TICKET), NONE)
            for _ in range(leaked):
                self._give_back()
            atomics.store(self.addr + O_SUSPECT, 0)
            return leaked
        finally:
            mutex.release(word, me)

    def _count_leaked(self, dead):
        """(tickets - releases) - recorded tickets, or None when it cannot be
        told now (a live thread is TAKING, or a ticket was taken meanwhile)."""
        t = self.threads
        tickets = atomics.load(self.addr + O_TICKETS)
        recorded = 0
        for slot in range(t.n):
            o = t.slot_off(slot)
            if t.get32(o + O_STATE) == 0:   # FREE
                continue
            ticket = atomics.load(t.addr + (o - t.base) + O_TICKET)
            if ticket >= 0:
                recorded += 1
            elif ticket == TAKING and t.get64(o + O_TID) != dead and _lives(t, o):
                return None
        if atomics.load(self.addr + O_TICKETS) != tickets:
            return None
        releases = atomics.load(self.addr + O_RELEASES)
        return max(0, tickets - releases - recorded)

    def in_use(self):
        """(processors busy, threads waiting): lock-free, for the monitor."""
        tickets, releases = struct.unpack_from("<qq", self.buf, self.base)
        if not self.limited:
            return None, 0
        admitted = min(tickets, self.m + releases)
        return admitted - releases, max(0, tickets - self.m - releases)

    def on_cpu(self):
        """tids of the threads holding a processor, read consistently: the
        scan of the thread table is repeated until no ticket was taken and
        none given back while it ran (a holder clears its flag before it
        gives its ticket back, so a switch in the middle is seen and the
        scan redone).  Lock-free; any process."""
        for _ in range(1000):
            before = struct.unpack_from("<qq", self.buf, self.base)
            on = [r["tid"] for r in self.threads.snapshot() if r["on_cpu"]]
            if struct.unpack_from("<qq", self.buf, self.base) == before:
                return on
        return on

    def _check_invariants(self):
        """At most m threads hold a processor; the counters are consistent."""
        tickets, releases = struct.unpack_from("<qq", self.buf, self.base)
        assert releases <= tickets, f"more releases ({releases}) than tickets ({tickets})"
        on_cpu = self.on_cpu()
        if self.limited:
            assert len(on_cpu) <= self.m, f"{len(on_cpu)} threads hold one of {self.m} processors: {on_cpu}"
        else:
            assert not on_cpu, "no processor limit, yet threads are marked on a processor"

    def account(self, tid, cpu_ns):
        """Record the thread's CPU time so far (self only)."""
        self.threads.put64(self.threads.off(tid, O_RUN), cpu_ns)


def _lives(t, o):
    """Is the thread of entry offset o still running (state and process)?"""
    if t.get32(o + O_STATE) not in LIVE:
        return False
    pid = t.get64(o + O_PID)
    return pid == 0 or pid_alive(pid)
