"""Page replacement policies: which page leaves when the frames run out.

Two uses of the same ideas:

* live, inside the pager (`Kernel(policy="clock" | "fifo" | "lru" | "random")`):
  `pick(vm, candidates)` runs under the VM lock and names a victim frame among
  the evictable ones (resident, not in transit, inside the quota's reach);
* offline, on a recorded reference trace: `simulate(trace, frames, policy)`
  counts the faults a policy would take, including OPT (Belady's optimal
  policy: evict the page used farthest in the future), which no live pager can
  run because it needs to know the future.

What the live pager can observe.  A Python-level pager sees a reference only
when it loads a translation into a thread's TLB (like the x86 "accessed" bit,
which the MMU sets on a page walk, not on every access).  So:

    clock   second chance on the REF bit set at every TLB fill.  Clearing a
            REF bit bumps the epoch of the address spaces concerned, so their
            threads re-walk, and a page still in use gets its bit back.
    lru     least recently *observed*: the `used` stamp of a frame is the
            reference clock at its last TLB fill; after each choice every
            address space's epoch is bumped (TLBs refill, stamps refresh).
            Exact LRU lives in `simulate`.
    fifo    oldest load first; needs no reference information, so the live
            pager reproduces `simulate` exactly (Belady's anomaly included).
    random  uniform among the candidates, from the kernel's seed (repeatable).
"""

import random as _random
import struct

from .tables import D_WORD, DESC, F_LOADED, F_USED, REF

NAMES = ("clock", "fifo", "lru", "random")
_i64 = struct.Struct("<q")


class Policy:
    name = ""

    def pick(self, vm, candidates):
        """candidates: [(frame, descriptor), ...] in frame order, non-empty.
        Returns (victim frame, mask of address-space slots whose epochs must be
        bumped so their threads report references again)."""
        raise NotImplementedError


class Fifo(Policy):
    name = "fifo"

    def pick(self, vm, candidates):
        loaded = vm.frames.column(F_LOADED)
        return min((loaded[f], f) for f, _ in candidates)[1], 0


class Lru(Policy):
    name = "lru"

    def pick(self, vm, candidates):
        used = vm.frames.column(F_USED)
        return min((used[f], f) for f, _ in candidates)[1], vm.live_as_mask()


class RandomPolicy(Policy):
    name = "random"

    def pick(self, vm, candidates):
        return candidates[vm.random_below(len(candidates))][0], 0


class Clock(Policy):
    """The hand sweeps frames in order; a referenced page loses its REF bit
    and is passed over once (second chance)."""
    name = "clock"

    def pick(self, vm, candidates):
        n = vm.geo.frames
        hand = vm.clock_hand()
        order = sorted(candidates, key=lambda c: (c[0] - hand) % n)
        mask = 0
        for frame, desc in order + order:
            off = vm.o_descs + desc * DESC + D_WORD
            word = _i64.unpack_from(vm.buf, off)[0]
            if word & REF:
                _i64.pack_into(vm.buf, off, word & ~REF)
                mask |= vm.block_mask_of(desc)
                continue
            vm.set_clock_hand((frame + 1) % n)
            return frame, mask
        frame = order[0][0]  # unreachable: the second pass finds every bit clear
        vm.set_clock_hand((frame + 1) % n)
        return frame, mask


def make(name):
    """The live policy called `name`.  ValueError for an unknown name."""
    table = {"clock": Clock, "fifo": Fifo, "lru": Lru, "random": RandomPolicy}
    if name not in table:
        raise ValueError(f"policy must be one of {', '.join(NAMES)}, not {name!r}")
    return table[name]()


# --- offline: the same policies on a reference trace --------------------------

def simulate(trace, frames, policy, seed=None):
    """Faults taken by `policy` ("fifo", "lru", "clock", "random", "opt") on
    `trace` (a sequence of hashable page names) with `frames` frames, starting
    from empty memory (so the first touch of each page is a fault, as the
    pager's demand-zero fault is)."""
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive int, not {frames!r}")
    trace = list(trace)
    sim = {"fifo": _sim_fifo, "lru": _sim_lru, "clock": _sim_clock, "random": _sim_random, "opt": _sim_opt}
    if policy not in sim:
        raise ValueError(f"policy must be one of fifo, lru, clock, random, opt; not {policy!r}")
    return sim[policy](trace, frames, seed)


def compare(trace, frames, policies=("opt", "fifo", "lru", "clock", "random"), seed=None):
    """{policy: faults} for several policies on one trace."""
    return {p: simulate(trace, frames, p, seed) for p in policies}


def _sim_fifo(trace, frames, seed):
    resident, queue, faults = set(), [], 0
    for p in trace:
        if p in resident:
            continue
        faults += 1
        if len(resident) == frames:
            resident.discard(queue.pop(0))
        resident.add(p)
        queue.append(p)
    return faults


def _sim_lru(trace, frames, seed):
    stamp, faults = {}, 0
    for t, p in enumerate(trace):
        if p not in stamp:
            faults += 1
            if len(stamp) == frames:
                del stamp[min(stamp, key=stamp.get)]
        stamp[p] = t
    return faults


def _sim_clock(trace, frames, seed):
    slots, ref, where, hand, faults = [None] * frames, [False] * frames, {}, 0, 0
    for p in trace:
        if p in where:
            ref[where[p]] = True
            continue
        faults += 1
        while slots[hand] is not None and ref[hand]:
            ref[hand] = False
            hand = (hand + 1) % frames
        if slots[hand] is not None:
            del where[slots[hand]]
        slots[hand], ref[hand], where[p] = p, True, hand
        hand = (hand + 1) % frames
    return faults


def _sim_random(trace, frames, seed):
    rng = _random.Random(seed)
    resident, faults = [], 0
    for p in trace:
        if p in resident:
            continue
        faults += 1
        if len(resident) == frames:
            resident.pop(rng.randrange(frames))
        resident.append(p)
    return faults


def _sim_opt(trace, frames, seed):
    # next_use[i]: index of the next reference to trace[i] after i (or infinity)
    nxt, last = [0] * len(trace), {}
    for i in range(len(trace) - 1, -1, -1):
        nxt[i] = last.get(trace[i], float("inf"))
        last[trace[i]] = i
    resident, faults = {}, 0     # page -> index of its next use
    for i, p in enumerate(trace):
        if p not in resident:
            faults += 1
            if len(resident) == frames:
                del resident[max(resident, key=resident.get)]
        resident[p] = nxt[i]
    return faults
