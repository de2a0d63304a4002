"""The gateway of a controlled run: every yield point, every wait, every switch.

In a controlled kernel a thread reaches the gate before each operation of
the textbook interface (a *yield point*): it writes its pending operation on
the board, and, holding the baton, decides who runs the next step -- itself
or another thread that can run.  If another, it hands the baton over (sets
that thread's `turn` word, wakes it) and sleeps on its own `turn` until some
thread chooses it.  Chosen, it executes the operation, records the step in
the trace, and runs its own code up to the next gate.  So exactly one thread
runs at a time, and what it computes between two gates is atomic.

Blocking without sleeping.  A thread whose operation cannot proceed (ACQUIRE
of a held lock, AWAIT below the value, SEND to a full buffer, RECEIVE from an
empty one, join of a live thread) is simply never chosen: the holder checks
each pending operation against the shared state (`_can_run`) before it
chooses, so a blocked thread hands the processor back with its reason and
becomes runnable the moment the object changes.  When it is chosen, its
`_nowait` twin succeeds (the parts' wrappers in wiring.py call exactly
those).

When nobody can run:  a thread whose wait has a timeout times out at the
earliest deadline (virtual time jumps to it); otherwise the run hangs, and
thread 0 gets `Hang`, naming every thread and what it waits for, with a
"lost wake-up?" note when a RELEASE, ADVANCE or SEND on the same object
found nobody waiting earlier.  A wait-for cycle of locks is found when the
thread that closes it announces its ACQUIRE: that ACQUIRE raises
DeadlockError, as in free mode.  More than `max_steps` steps: `StepLimit` in
thread 0.

The spin rule.  A thread that reads the same word (or eventcount) again
while nothing was written anywhere since its last read is *spinning*: it is
not chosen while any thread that is not spinning can run, so a spin loop
costs one step per write, not a step per turn of the loop.

Virtual time.  `time.sleep(d)` in a controlled kernel is a yield point that
gives no guarantee about what the others do meanwhile (the sleeping thread
may be chosen at once): a "fix" made of sleeps fails, as it does on a busy
machine.  The virtual clock moves to the sleeper's wake time when it runs,
and to a timeout's deadline when nothing else can run.

Which process does what: the gate is per process (one per thread); the
board (board.py) is shared; only the baton holder writes it.
"""

import os
import sys
import time

from .. import atomics
from ..errors import DeadlockError, Hang, KernelError, ReplayMismatch, StepLimit
from . import ops, strategies
from .board import (PCT, RANDOM, RR, H_DEFAULT, YIELDED, ABORT_DIED, ABORT_HANG, ABORT_MISMATCH, ABORT_PAUSED, ABORT_PRUNED, ABORT_RECYCLE, ABORT_STEPLIMIT,
                    DEADLOCK, FAILED, H_ABORT, H_ABORT_SLOT, H_CUR_FLAGS, H_CUR_SLEEP, H_ENABLED, H_MAX_STEPS,
                    H_PREEMPTIONS, H_RUN, H_RUNNER, H_SLEEP, H_SLEEP_ADD, H_SLEEP_AT, H_STEPS, H_STRATEGY, H_VCLOCK,
                    NOBODY, ONGOING, PREEMPTED, PREFIX, R_ARG, R_ARG2, R_DEADLINE, R_FLAGS, R_OP, R_READ_STEPS,
                    R_READ_TARGETS, R_READS, R_SITE, R_TARGET, R_TID, R_TURN, READS, STARTED, TIMED_OUT, TIMEOUT)

_RUNTIME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LABS = os.path.join(_RUNTIME, "labs") + os.sep       # the labs' harnesses and starters are programs


def _runtime_code(filename):
    """Is this file the runtime's own (not a program's: frames a site skips)?"""
    return filename.startswith(_RUNTIME) and not filename.startswith(_LABS)
_SAMPLING = (RR, RANDOM, PCT)       # strategies that sample one schedule fairly (not the search, not replays)
_WAIT_SLICE = 0.25
_NO_TARGET = 0


_WORD_MIN, _WORD_MAX = -(1 << 63), (1 << 63) - 1


def _word(x):
    """An argument as a board word: an address or a count past 64 bits is
    recorded as the nearest word (the call itself then faults or refuses)."""
    return x if _WORD_MIN <= x <= _WORD_MAX else (_WORD_MAX if x > 0 else _WORD_MIN)


class Recycle(BaseException):
    """The controlled run this thread belongs to was abandoned (the explorer
    starts the next one on the same machine): unwind to the VP bootstrap,
    which puts the VP back in its pool or ends it.  A BaseException, so that
    a program's `except Exception` does not keep the thread going."""


class Paused(KernelError):
    """`vos step`: the given choices are used up; `.state` lists each thread's next operation."""

    def __init__(self, message, state):
        super().__init__(message)
        self.state = state


class Gate:
    """The calling process's gateway into the controlled run (one per thread)."""

    def __init__(self, kernel, ctx):
        self.kernel = kernel
        self.ctx = ctx
        self.board = kernel.sched
        self.tid = ctx.tid
        self.slot = ctx.tid % kernel.config.max_threads
        self.n = kernel.config.max_threads
        self.page_size = kernel.config.page_size
        self.inside = False           # executing a step: yield points met meanwhile are part of it
        self._sites = {}              # (file, line) -> site id: private to this process
        self._files = {}              # file -> content hash (tokens refuse a changed program)
        self._my_op = 0
        self._real_sleep = time.sleep

    # --- the yield point --------------------------------------------------------------

    def point(self, op, target=_NO_TARGET, arg=0, arg2=0, timeout=None):
        """Announce op, decide, wait for the turn.  Returns when this thread is
        chosen to execute it (the op can run).  Raises TimeoutError (the
        wait timed out: a step of its own), DeadlockError (the ACQUIRE would
        close a cycle), Hang / StepLimit / ReplayMismatch (thread 0: the run
        stops)."""
        b, me = self.board, self.slot
        if b.get(H_ABORT) == ABORT_RECYCLE:
            raise Recycle()
        b.set_rec(me, R_OP, op)
        b.set_rec(me, R_TARGET, target)
        b.set_rec(me, R_ARG, _word(arg))
        b.set_rec(me, R_ARG2, _word(arg2))
        b.set_rec(me, R_SITE, self._site() if op != ops.EXIT else 0)
        flags = b.rec(me, R_FLAGS) & ~(TIMED_OUT | DEADLOCK)
        if timeout is not None:
            b.set_rec(me, R_DEADLINE, b.get(H_VCLOCK) + max(1, int(min(timeout, 1e9) * 1e9)))  # <= 1e9 s
        else:
            b.set_rec(me, R_DEADLINE, 0)
        b.set_rec(me, R_FLAGS, flags)
        self._my_op = op
        if op == ops.ACQUIRE:
            self._check_cycle(target)
        self._decide(exclude_self=False)
        if b.rec(me, R_FLAGS) & DEADLOCK and not self.kernel.locks.free_for(target & ops.VALUE):
            self.inside = True
            self.done(flags=FAILED)
            self._raise_deadlock()
        if b.rec(me, R_FLAGS) & TIMED_OUT:
            self.done(flags=TIMEOUT)
            raise TimeoutError(f"{ops.NAMES[op]} timed out after {timeout} s of virtual time "
                               f"({self._describe_wait(me)})")
        self.inside = True

    def done(self, value=0, block=0, flags=0):
        """The step is executed: record it in the trace, clear the pending op."""
        b, me = self.board, self.slot
        step = b.get(H_STEPS) - 1
        op = b.rec(me, R_OP)
        target = b.rec(me, R_TARGET)
        if op in ops.WAKES and not self._someone_waits(op, target):
            flags |= NOBODY
        flags |= b.get(H_CUR_FLAGS)
        aux = b.rec(me, R_ARG) if op not in (ops.LOAD, ops.STORE, ops.RSM, ops.LOAD_BYTES, ops.STORE_BYTES) \
            else b.rec(me, R_ARG2)
        if not isinstance(value, int):
            value = 0
        value = max(-(1 << 63), min(value, (1 << 63) - 1))
        b.write_step(step, [self.tid, op | flags << 8, target, aux, value, b.rec(me, R_SITE),
                            b.get(H_ENABLED), b.get(H_CUR_SLEEP), block, b.get(H_RUN), b.get(H_DEFAULT)])
        if op in ops.READS or op == ops.READ:
            self._remember_read(target, step)
        elif op not in (ops.START, ops.YIELD, ops.SLEEP, ops.SPAWN, ops.JOIN, ops.AWAIT):
            b.stamp(target, step)                           # written now (the spin rule)
        b.set_rec(me, R_OP, 0)
        self.inside = False

    def failed(self):
        """The step's operation raised: record it as failed."""
        if self.inside:
            self.done(flags=FAILED)

    # --- memory: the pager's slow path and LOAD_BYTES / STORE_BYTES ask here -------------

    _MEMORY_OPS = {"load": ops.LOAD, "store": ops.STORE, "rsm": ops.RSM}

    def memory(self, m, vaddr, write, op, arg):
        """A LOAD, STORE or RSM as a step: its target is the word it names
        (whatever address space reaches it).  Returns what the access returns."""
        code = self._MEMORY_OPS[op]
        ident = m.identity(vaddr)
        block = ident[1] if ident else 0
        target = ops.word_target(ident[0], ident[2]) if ident else ops.target(ops.WORD, ops.VALUE)
        self.point(code, target, arg=arg if code == ops.STORE else 0, arg2=vaddr)
        try:
            r = m.fault(vaddr, write, op, arg)
        except BaseException:
            self.failed()
            raise
        self.done(arg if code == ops.STORE else r, block=block)
        return r

    def memory_bytes(self, m, call, vaddr, what, write):
        """A whole LOAD_BYTES or STORE_BYTES as one step (its target: the page
        of its first byte)."""
        ident = m.identity(vaddr) if isinstance(vaddr, int) else None
        n = len(what) if write and hasattr(what, "__len__") else what if isinstance(what, int) else 0
        block = ident[1] if ident else 0
        target = ops.page_target(ident[0], ident[2] - ident[2] % self.page_size) if ident \
            else ops.target(ops.PAGE, ops.VALUE)
        self.point(ops.STORE_BYTES if write else ops.LOAD_BYTES, target, arg=n, arg2=vaddr if ident else 0)
        try:
            r = call(vaddr, what)
        except BaseException:
            self.failed()
            raise
        self.done(n, block=block)
        return r

    # --- thread start, exit, sleep ------------------------------------------------------

    def announce_start(self, slot, tid):
        """(creator, holding the baton) A new thread's first pending op is its start."""
        b = self.board
        b.clear_record(slot)
        b.set_rec(slot, R_TID, tid)
        b.set_rec(slot, R_OP, ops.START)
        b.set_rec(slot, R_TARGET, ops.target(ops.THREAD, tid))
        strategies.on_create(b, slot)

    def start(self):
        """First thing in a new thread: wait to be chosen, then run (the START step)."""
        self._wait_turn()
        b = self.board
        b.set_rec(self.slot, R_FLAGS, b.rec(self.slot, R_FLAGS) | STARTED)
        self.inside = True
        self.done()

    def depart(self):
        """The thread has ended (its EXIT step is recorded): hand the baton on
        for good.  Its process then ends or returns to the pool."""
        self.board.set_rec(self.slot, R_OP, 0)
        self._decide(exclude_self=True)

    def sleep(self, seconds):
        """time.sleep inside a controlled kernel: a yield point on virtual time.
        (The runtime's own sleeps, and those inside a step, are real.)"""
        if self.inside or _runtime_code(sys._getframe(1).f_code.co_filename):
            return self._real_sleep(seconds)
        ns = max(0, int(float(seconds) * 1e9))
        self.point(ops.SLEEP, _NO_TARGET, ns, self.board.get(H_VCLOCK) + ns)
        b = self.board
        b.put(H_VCLOCK, max(b.get(H_VCLOCK), b.rec(self.slot, R_ARG2)))
        self.done(value=ns)

    # --- deciding ---------------------------------------------------------------------

    def _decide(self, exclude_self):
        """Holding the baton: choose the next step's thread and give it the turn
        (or keep it).  Returns when this thread is chosen (unless it has
        departed).  Stops the run (abort) when it must."""
        b, me = self.board, self.slot
        step = b.get(H_STEPS)
        if step >= b.get(H_MAX_STEPS):
            return self._abort(ABORT_STEPLIMIT, me, exclude_self)
        waiting = self._at_gates()
        runnable = [s for s in waiting if self._can_run(s)]
        if not runnable:
            runnable = self._time_out()
            if not runnable:
                return self._abort(ABORT_HANG, me, exclude_self)
        spinning = {s for s in runnable if self._spinning(s)}
        strategy = b.get(H_STRATEGY)
        cands = runnable
        if strategy in _SAMPLING:
            # Fair sampling: a spinner waits while someone else can run, and a YIELD or a spin lets the
            # others run first (else PCT runs a high-priority spinner for ever).  Not for the search and
            # replays: leaving a thread out there would leave out every schedule in which it ran next (a
            # re-read may be a double check whose old value matters, not a spin), and lose bugs.
            cands = [s for s in runnable if s not in spinning] or runnable
            if (b.rec(me, R_OP) == ops.YIELD or me in spinning) and not exclude_self:
                cands = [s for s in cands if s != me] or cands
        mask = 0
        for s in cands:                           # who could run this step (the explorer branches on these)
            mask |= 1 << s
        b.put(H_ENABLED, mask)
        # YIELD offers the processor, and a spinner waits for someone else: switching away from either is
        # no preemption, and the next thread in slot order runs (round robin: spinners take turns)
        yielding = b.rec(me, R_OP) == ops.YIELD or me in spinning
        current = None if exclude_self or yielding else (me if me in cands else None)
        default = strategies.run_on(cands, current, me if yielding else None)   # (before the sleep set:
        sleep = b.get(H_SLEEP)                                                  # switching from a sleeper preempts)
        if step == b.get(H_SLEEP_AT):
            sleep |= b.get(H_SLEEP_ADD)
        if strategy == PREFIX:
            awake = [s for s in cands if not sleep >> s & 1]
            if not awake:
                return self._abort(ABORT_PRUNED, me, exclude_self)
            if len(awake) < len(cands) and (yielding or all(s in spinning for s in awake)):
                # A thread that YIELDs or spins waits for someone -- maybe a sleeper (a thread whose next
                # step was explored already), and the awake ones may only spin (RSM, YIELD, RSM ...) till the
                # step limit: wake the sleepers.  A sleep set only saves work, so waking is always sound.
                sleep &= ~sum(1 << s for s in cands)
                awake = cands
            cands = awake
        chosen = strategies.choose(b, strategy, step, cands, current, lambda s: b.rec(s, R_TID),
                                   after=me if yielding else None)
        if chosen == strategies.MISMATCH:
            return self._abort(ABORT_MISMATCH, me, exclude_self)
        if chosen == strategies.STOP:
            return self._abort(ABORT_PAUSED, me, exclude_self)
        # A preemption: another thread than the non-preemptive rule's while this one could run on (or
        # offered the processor with a YIELD or a spin, whose rule is the next thread in slot order).
        # Choosing among the others when this one blocked or ended is free.
        costly = current is not None or (yielding and not exclude_self)
        preempted = costly and chosen != default
        b.put(H_CUR_SLEEP, sleep)
        b.put(H_CUR_FLAGS, (PREEMPTED if preempted else 0) | (ONGOING if current is not None else 0)
              | (YIELDED if costly and current is None else 0))
        b.put(H_DEFAULT, b.rec(default, R_TID))
        if preempted:
            b.put(H_PREEMPTIONS, b.get(H_PREEMPTIONS) + 1)
        if sleep:                                 # the sleep set of the state after this step
            op, tgt = b.rec(chosen, R_OP), b.rec(chosen, R_TARGET)
            for s in range(self.n):
                if sleep >> s & 1 and (s == chosen or ops.dependent(b.rec(s, R_OP), b.rec(s, R_TARGET), op, tgt,
                                                                    self.page_size)):
                    sleep &= ~(1 << s)
        b.put(H_SLEEP, sleep)
        b.put(H_STEPS, step + 1)
        b.put(H_RUNNER, chosen)
        if chosen != me:
            self._hand_to(chosen)
            if not exclude_self:
                self._wait_turn()

    def _remember_read(self, target, step):
        b, me = self.board, self.slot
        for i in range(READS):
            if b.rec(me, R_READ_TARGETS + i) == target:
                b.set_rec(me, R_READ_STEPS + i, step)
                return
        i = b.rec(me, R_READS) % READS
        b.set_rec(me, R_READ_TARGETS + i, target)
        b.set_rec(me, R_READ_STEPS + i, step)
        b.set_rec(me, R_READS, i + 1)

    def _spinning(self, s, writes=None):
        """Is thread s about to read again a word (or eventcount) that nobody
        wrote since it last read it?  Then its read cannot find anything new:
        it spins."""
        return self.board.spinning(s, self.page_size)

    def _at_gates(self):
        """Slots of the threads waiting at a gate (pending op != 0), ascending."""
        b = self.board
        return [s for s in range(self.n) if b.rec(s, R_OP)]

    def _hand_to(self, slot):
        b = self.board
        b.set_rec(self.slot, R_TURN, 0)
        atomics.store(b.turn_addr(slot), 1)
        atomics.futex_wake(b.turn_addr(slot), 1)

    def _wait_turn(self):
        """Sleep until this thread holds the baton; then raise if the run was stopped."""
        b, me = self.board, self.slot
        addr = b.turn_addr(me)
        waited = 0.0
        while not atomics.load(addr):
            atomics.futex_wait(addr, 0, _WAIT_SLICE)
            self.ctx.check_kernel()
            waited += _WAIT_SLICE
            if waited >= 1.0 and me == 0:
                waited = 0.0
                self._check_runner_alive()
        why = b.get(H_ABORT)
        if why == ABORT_RECYCLE and me != 0:
            raise Recycle()
        if why and me == 0:
            self._raise_abort()

    def _abort(self, why, me, departing=False):
        """Stop the run: thread 0 raises the error (Hang, StepLimit, ...).  A
        thread that has ended (departing) hands over and is gone; any other
        waits for thread 0 to recycle or end it."""
        b = self.board
        b.put(H_ABORT, why)
        b.put(H_ABORT_SLOT, me)
        if me == 0:
            self._raise_abort()
        self._hand_to(0)
        if departing:
            return
        self._wait_turn()
        raise Recycle()

    def _check_runner_alive(self):
        """Thread 0, long at its gate: is the thread that holds the baton alive?"""
        b = self.board
        runner = b.get(H_RUNNER)
        tid = b.rec(runner, R_TID)
        if runner == 0 or not b.rec(runner, R_OP) and not b.rec(runner, R_TURN):
            return
        from ..mutex import holder_alive
        if not holder_alive(self.kernel.threads, tid):
            b.put(H_ABORT, ABORT_DIED)
            b.put(H_ABORT_SLOT, runner)
            self._raise_abort()

    def _raise_abort(self):
        b = self.board
        why = b.get(H_ABORT)
        if why == ABORT_HANG:
            raise Hang(self._hang_message())
        if why == ABORT_STEPLIMIT:
            raise StepLimit(f"the run took more than max_steps={b.get(H_MAX_STEPS)} steps: a livelock, or a "
                            f"longer program than the limit allows (Kernel(max_steps=...)). "
                            f"Running then: {self._describe_threads()}")
        if why == ABORT_MISMATCH:
            step = b.get(H_STEPS)
            raise ReplayMismatch(f"the program no longer matches the schedule at step {step}: the thread it "
                                 f"chose there cannot run now ({self._describe_threads()}). The program or its "
                                 "inputs changed since the token was made")
        if why == ABORT_PAUSED:
            raise Paused("the choices given are used up", self.snapshot())
        if why == ABORT_PRUNED:
            raise Pruned("every thread that can run is in the sleep set: this state was explored")
        raise KernelError(f"thread {b.rec(b.get(H_ABORT_SLOT), R_TID)} died while it held the baton "
                          "(killed from outside the controlled run)")

    # --- can a pending operation proceed? ------------------------------------------------

    def _can_run(self, s):
        b = self.board
        op = b.rec(s, R_OP)
        if op not in ops.BLOCKING:
            return True
        flags = b.rec(s, R_FLAGS)
        if flags & (TIMED_OUT | DEADLOCK):
            return True
        target, arg, arg2 = b.rec(s, R_TARGET), b.rec(s, R_ARG), b.rec(s, R_ARG2)
        value = target & ops.VALUE
        k = self.kernel
        if op == ops.ACQUIRE:
            return k.locks.free_for(value)
        if op == ops.AWAIT:
            return k.eventcounts.count_of(value) > arg
        if op == ops.JOIN:
            return k.thread_manager.ended(value)
        if op == ops.SEND:
            return k.buffers.can_send(arg2, value, arg, b.rec(s, R_TID))
        if op == ops.RECEIVE:
            return k.buffers.can_receive(arg2, value, b.rec(s, R_TID))
        return True

    def _time_out(self):
        """Nobody can run: the earliest timeouts fire (virtual time jumps)."""
        b = self.board
        waiting = [(b.rec(s, R_DEADLINE), s) for s in self._at_gates() if b.rec(s, R_DEADLINE)]
        if not waiting:
            return []
        first = min(d for d, _ in waiting)
        b.put(H_VCLOCK, max(b.get(H_VCLOCK), first))
        fired = [s for d, s in waiting if d == first]
        for s in fired:
            b.set_rec(s, R_FLAGS, b.rec(s, R_FLAGS) | TIMED_OUT)
        return fired

    def _someone_waits(self, op, target):
        """(executing a wake-up) Was a thread blocked on the same object?"""
        b = self.board
        enabled = b.get(H_ENABLED)
        for s in self._at_gates():
            if s != self.slot and b.rec(s, R_TARGET) == target and b.rec(s, R_OP) in ops.BLOCKING \
                    and not enabled >> s & 1:
                return True
        return False

    def _check_cycle(self, target):
        """ACQUIRE announced: would waiting close a wait-for cycle?  Then this
        thread's ACQUIRE raises DeadlockError when it runs (it can run)."""
        k, b = self.kernel, self.board
        lock = target & ops.VALUE
        hops = []
        seen = {self.tid}
        while True:
            holder = k.locks.holder_of(lock)
            if holder is None or k.locks.free_for(lock):
                return
            hops.append((lock, holder))
            if holder == self.tid:
                break
            if holder in seen:
                return
            seen.add(holder)
            s = holder % self.n
            if b.rec(s, R_TID) != holder or b.rec(s, R_OP) != ops.ACQUIRE:
                return
            lock = b.rec(s, R_TARGET) & ops.VALUE
        b.set_rec(self.slot, R_FLAGS, b.rec(self.slot, R_FLAGS) | DEADLOCK)
        self.cycle = hops

    def _raise_deadlock(self):
        """Raise the DeadlockError found when the ACQUIRE was announced."""
        k = self.kernel
        parts = []
        waiter = self.tid
        for lock, holder in self.cycle:
            parts.append(f"thread {waiter} waits for lock {lock} {k.locks.name_of(lock)!r}, held by thread {holder}")
            waiter = holder
        err = DeadlockError("ACQUIRE would close a wait-for cycle (deadlock): " + "; ".join(parts)
                            + f". Thread {self.tid} gets this error; the other threads of the cycle keep waiting.")
        err.cycle = [(self.tid, self.cycle[0][0])] + [(h, lk) for (lk, _), (_, h) in zip(self.cycle[1:],
                                                                                           self.cycle)]
        raise err

    # --- words for humans -----------------------------------------------------------------

    def _site(self):
        """'file:line' of the program's call (the first frame outside the runtime) -> site id."""
        f = sys._getframe(2)
        while f is not None and _runtime_code(f.f_code.co_filename):
            f = f.f_back
        if f is None:
            return 0
        key = (f.f_code.co_filename, f.f_lineno)
        sid = self._sites.get(key)
        if sid is None:
            sid = self._sites[key] = self.board.add_site(f"{key[0]}:{key[1]}")
            if self.kernel.sched_check is not None:
                self.kernel.sched_check(key[0])       # a replay refuses a changed program
        return sid

    def _describe_wait(self, s):
        from .describe import describe_pending
        return describe_pending(self.kernel, self.board, s)

    def _describe_threads(self):
        from .describe import describe_threads
        return describe_threads(self.kernel, self.board)

    def _hang_message(self):
        from .describe import hang_message
        return hang_message(self.kernel, self.board)

    def snapshot(self):
        from .describe import snapshot
        return snapshot(self.kernel, self.board)


class Pruned(KernelError):
    """The explorer's: this run reached a state that sleep sets say was explored."""


__all__ = ["Gate", "Paused", "Pruned", "Recycle"]
