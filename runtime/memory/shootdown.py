"""TLB shootdown: no thread uses a frame after it was given to another page.

The problem.  Every process keeps a translation cache (a TLB: virtual page ->
frame, pager.py) so that a LOAD of a resident word costs a dictionary lookup
and two struct reads instead of a page-table walk under the VM lock.  When the
pager takes a frame away from a page (eviction, UNMAP before FREE_BLOCK), other
processes may still hold that translation, and one of them may be *between*
checking it and using it.  A STORE through a stale translation would write into
some other page's data: isolation broken silently.  Retrying after the fact
works for a LOAD (read, then re-check), never for a STORE.

The design: epochs plus shootdown with acknowledgement.

* Every address space has an *epoch* word.  The pager bumps it (atomically,
  under the VM lock) whenever a translation in that address space may have
  become wrong.  Every TLB entry is tagged with the epoch it was loaded under
  (read under the VM lock, with the page table), and every access first reads
  the epoch word (one plain word read, no lock, no atomic) and uses the entry
  only if the tag still equals it.  Otherwise it takes the slow path.  All of
  a process's entries carry the same tag (a changed epoch empties the TLB).

* Every thread has an *ack* word: the epoch it has acknowledged, i.e. "I will
  never again use an entry tagged below this".  A thread writes its ack only
  at a *safe point*, where no access of its own is between check and use:
  on entering the slow path (faults.fault), or from the shootdown interrupt
  when the interrupted code is not inside LOAD/STORE/... (pager.py inspects the
  interrupted frame).  The ack is an atomic store, a release: every access the
  thread made before it is visible to whoever sees the ack.

* The evictor (the faulting thread itself) marks the victim EVICTING and
  bumps the epochs under the VM lock, drops the lock, and then waits here until
  every thread that caches translations of those address spaces has acked the
  new epoch (or holds no translation: ack OFFLINE, or is dead).  Only then does
  it write the frame to swap and reuse it.

Why that is enough.  Suppose thread T uses a translation of victim page v in
frame F after F was reused.  T checked the tag against the epoch word just
before the use, inside one access function, and the tag matched, so T's read
of the epoch preceded the bump (the bump makes tag and epoch differ forever).
The evictor reused F only after seeing T's ack of the bumped epoch.  T acks
only at a safe point, never between the check and the use of one access, and
it can ack the new epoch only after reading it, which is after the bump.  So
T's ack comes after its use in T's program order, and (the ack being a
release, the evictor's read of it an acquire) the use happened before the
evictor touched F.  Contradiction.  A translation loaded after the bump
carries the new tag and cannot be of v, because v was already EVICTING when
the page table was walked (both under the VM lock).

Threads that do not come by.  A thread busy computing, or asleep in ACQUIRE,
or waiting for a processor, may hold a stale TLB for a long time.  The
evictor first spins briefly (a thread that is accessing memory acks within
microseconds at its next access), then sends the thread's process the
shootdown interrupt (SIGUSR2, our inter-processor interrupt), whose handler
acks at once when the process is at a safe point and otherwise leaves it for
the next access or the next interrupt, which the evictor re-sends every few
milliseconds.  While it waits, the evictor gives its processor up
(ctx.waiting(WAIT_SWAP, page)): the thread it waits for may need it.

Which threads.  `pending()` reads every cpu entry below `cpus_used` with two
strided slices: a thread is waited for if it is online (has loaded a
translation), caches translations of an address space whose epoch was bumped,
and has acknowledged less.  Whether a laggard has ended is judged by its
process (pid_alive), never by its state word alone.

Costs.  A LOAD pays one extra word read.  An eviction bumps the epoch of
every address space that maps the victim, so their threads refill their TLBs
(a soft fault each); an eviction costs a signal round trip only for threads
that are not using memory at that moment.
"""

import os
import signal
import struct
import time

from .. import atomics
from ..context import current
from ..threads import O_PID, WAIT_SWAP, pid_alive
from .tables import A_EPOCH, AS_ENTRY, C_ACK, C_AS, CPU_ENTRY, H_CPUS_USED, H_INTERRUPTS, H_SHOOTDOWNS, OFFLINE

_i64 = struct.Struct("<q")
_SPIN = 200            # quick re-checks before interrupting anyone
_SLICE = 0.002         # futex sleep between re-checks (seconds)
_RESEND = 0.005        # re-send the interrupt to a laggard this often (seconds)


class Shootdown:
    SIGNAL = signal.SIGUSR2

    def __init__(self, vm):
        self.vm = vm
        self.buf = vm.buf
        self.can_interrupt = False  # this process has the handler installed (main thread)

    # --- epochs (lock) -----------------------------------------------------------------

    def epoch_off(self, as_slot):
        return self.vm.o_as + as_slot * AS_ENTRY + A_EPOCH

    def bump(self, mask):
        """(lock) New epochs for every address-space slot in mask: {slot: epoch}."""
        out = {}
        s = 0
        while mask:
            if mask & 1:
                out[s] = atomics.fetch_add(self.vm.addr + self.epoch_off(s), 1) + 1
            mask >>= 1
            s += 1
        return out

    # --- acknowledgements (self) ---------------------------------------------------------

    def cpu_off(self, tid):
        return self.vm.o_cpus + (tid % self.vm.geo.max_threads) * CPU_ENTRY

    def online(self, tid, as_slot, epoch):
        """(lock) Self, loading its first translation: from now on evictors wait for it.

        `as` is written once, here, with one word store (a struct.pack_into
        would clear it first, and an evictor reading it at that moment would
        skip this thread), before the ack that makes the entry count."""
        o = self.cpu_off(tid)
        vm = self.vm
        vm.words[(o + C_AS) >> 3] = as_slot
        used = vm.base + H_CPUS_USED
        slot = tid % vm.geo.max_threads
        if vm.words[used >> 3] <= slot:
            vm.words[used >> 3] = slot + 1
        self.ack(tid, epoch)

    def ack(self, tid, epoch):
        """Self, at a safe point: "I use no entry tagged below `epoch` any more"."""
        a = self.vm.addr + self.cpu_off(tid) + C_ACK
        atomics.store(a, epoch)
        atomics.futex_wake(a, 1 << 30)

    def offline(self, tid):
        """Self or burier: the thread holds no translation (any more)."""
        a = self.vm.addr + self.cpu_off(tid) + C_ACK
        atomics.store(a, OFFLINE)
        atomics.futex_wake(a, 1 << 30)

    # --- waiting for everyone (no lock) -------------------------------------------------------

    def pending(self, epochs, me):
        """Thread slots that may still use a translation older than `epochs`."""
        vm = self.vm
        n = vm.words[(vm.base + H_CPUS_USED) >> 3]
        mine = me % vm.geo.max_threads
        w0 = vm.o_cpus >> 3
        acks = vm.words[w0 + C_ACK // 8:w0 + 2 * n:CPU_ENTRY // 8].tolist()
        ases = vm.words[w0 + C_AS // 8:w0 + 2 * n:CPU_ENTRY // 8].tolist()
        return [slot for slot, (ack, as_slot) in enumerate(zip(acks, ases))
                if ack != OFFLINE and slot != mine and as_slot in epochs and ack < epochs[as_slot]]

    def wait(self, epochs, page, refresh_own):
        """Return once every thread has acknowledged `epochs` ({as slot: epoch}).
        Runs in the faulting thread, without the VM lock.  refresh_own() acks
        the caller's own epoch (the caller is at a safe point)."""
        if not epochs:
            return
        ctx = current()
        refresh_own()
        laggards = self.pending(epochs, ctx.tid)
        for _ in range(_SPIN):
            if not laggards:
                return
            laggards = [s for s in laggards if not self._done(s, epochs)]
            if laggards:
                os.sched_yield()
        if not laggards:
            return
        vm = self.vm
        atomics.fetch_add(vm.addr + vm.base + H_SHOOTDOWNS, 1)
        sent = {}
        with ctx.waiting(WAIT_SWAP, page):
            while laggards:
                now = time.monotonic()
                for s in laggards:
                    if now - sent.get(s, 0.0) >= _RESEND:
                        sent[s] = now
                        self._interrupt(s)
                refresh_own()
                a = vm.addr + self.cpu_off(laggards[0]) + C_ACK
                w = atomics.load(a)
                if not self._done(laggards[0], epochs):
                    atomics.futex_wait(a, w & 0xFFFFFFFF, _SLICE)
                ctx.check_kernel()
                laggards = [s for s in laggards if not self._done(s, epochs)]

    def _done(self, slot, epochs):
        o = self.vm.o_cpus + slot * CPU_ENTRY
        ack = atomics.load(self.vm.addr + o + C_ACK)
        if ack == OFFLINE:
            return True
        as_slot = self.vm.words[(o + C_AS) >> 3]
        if as_slot not in epochs or ack >= epochs[as_slot]:
            return True
        # A thread that ended normally went OFFLINE in its death hook; one whose
        # process was killed makes no access any more.  (Judged by the process,
        # not by the state word, which its owner rewrites while it runs.)
        pid = self.vm.kernel.threads.get64(self.vm.kernel.threads.slot_off(slot) + O_PID)
        return bool(pid) and not pid_alive(pid)

    def _interrupt(self, slot):
        threads = self.vm.kernel.threads
        pid = threads.get64(threads.slot_off(slot) + O_PID)
        if pid <= 0:
            return
        try:
            os.kill(pid, self.SIGNAL)
            atomics.fetch_add(self.vm.addr + self.vm.base + H_INTERRUPTS, 1)
        except ProcessLookupError:
            pass
