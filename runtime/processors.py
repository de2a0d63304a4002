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

Known limit, stated honestly: a VP killed (SIGKILL) in the two-bytecode window
between taking a ticket and recording it in its thread entry leaks that
processor; the monitor shows it as fewer processors in use.

Section layout (guard: all atomic, no lock):

    off   size  field
      0      8  tickets    fetch_add by a thread that wants a processor
      8      8  releases   fetch_add by a thread (or its burier) giving one up
     16      8  m          written once at boot (0 = no limit)
     64  8 * R  ring       ring[t % R] = tid holding ticket t; written by that thread
"""

import struct

from . import atomics
from .threads import (FLAG_ON_CPU, O_FLAGS, O_RUN, O_STATE, O_TICKET, O_WAIT_KIND, O_WAKE,
                      RUNNABLE, RUNNING, WAIT_PROCESSOR)

O_TICKETS, O_RELEASES, O_M, O_RING = 0, 8, 16, 64
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
        ticket = atomics.fetch_add(self.addr + O_TICKETS, 1)
        t.put64(o + O_TICKET, ticket)
        atomics.store(self.addr + O_RING + 8 * (ticket % self.ring), tid)
        wake = t.addr + (o - t.base) + O_WAKE
        while ticket >= self.m + atomics.load(self.addr + O_RELEASES):
            atomics.futex_wait(wake, 0, 0.5)
            t.put32(o + O_WAKE, 0)
            timeout_check()
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
        t.put64(o + O_TICKET, -1)
        self._give_back()

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

    def release_for_dead(self, tid):
        """A burier gives back whatever processor or ticket a dead thread had."""
        t = self.threads
        o = t.off(tid)
        if self.limited and t.get64(o + O_TICKET) >= 0:
            t.put64(o + O_TICKET, -1)
            atomics.fetch_and(t.addr + (o - t.base) + O_FLAGS, ~FLAG_ON_CPU)
            self._give_back()

    def in_use(self):
        """(processors busy, threads waiting): lock-free, for the monitor."""
        tickets, releases = struct.unpack_from("<qq", self.buf, self.base)
        if not self.limited:
            return None, 0
        admitted = min(tickets, self.m + releases)
        return admitted - releases, max(0, tickets - self.m - releases)

    def _check_invariants(self):
        """At most m threads hold a processor; the counters are consistent."""
        tickets, releases = struct.unpack_from("<qq", self.buf, self.base)
        assert releases <= tickets, f"more releases ({releases}) than tickets ({tickets})"
        on_cpu = [r["tid"] for r in self.threads.snapshot() if r["on_cpu"]]
        if self.limited:
            assert len(on_cpu) <= self.m, f"{len(on_cpu)} threads hold one of {self.m} processors: {on_cpu}"
        else:
            assert not on_cpu, "no processor limit, yet threads are marked on a processor"

    def account(self, tid, cpu_ns):
        """Record the thread's CPU time so far (self only)."""
        self.threads.put64(self.threads.off(tid, O_RUN), cpu_ns)
