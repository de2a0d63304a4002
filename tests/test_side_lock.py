"""The side lock's word, one process, schedules forced by hand.

These tests drive SideLock objects for three threads over one word in this
process, standing in for the ring's senders; the interleaving that matters
is forced from inside the asker's read of the holder's busy line, so no
timing is involved.  (The ring's own tests run the same lock across real
processes; test_chaos.py kills them at random.)
"""

import ctypes
import struct

import pytest

from runtime import side_lock
from runtime.errors import WouldBlock
from runtime.threads import RUNNING

KEY = 7
_line = struct.Struct(f"{side_lock.BUSY_WORDS}q")


class FakeThreads:
    """Every thread entry says RUNNING (the holder is alive and inside)."""

    def off(self, tid):
        return tid

    def get32(self, off):
        return RUNNING


class FakeCtx:
    def __init__(self, tid):
        self.tid = tid

    def check_kernel(self):
        pass


class Three:
    """One lock word and three threads' busy lines and locks on it."""

    def __init__(self, monkeypatch):
        monkeypatch.setattr(side_lock, "membarrier", lambda: None)   # one process: nothing to fence
        self.mem = ctypes.create_string_buffer(8 + 3 * side_lock.BUSY_STRIDE + 64)
        base = (ctypes.addressof(self.mem) + 63) // 64 * 64
        self.word_addr = base
        self.lines = {}
        self.locks = {}
        self.before_read = None            # a hook run inside an asker's read of a busy line
        for tid in (0, 1, 2):
            addr = base + 64 + tid * side_lock.BUSY_STRIDE
            self.lines[tid] = addr
            lock = side_lock.SideLock(base, KEY, 0, 0, "send", "bounded buffer 1")
            lock.bind(FakeCtx(tid), side_lock.BusyLine(FakeCtx(tid), addr), FakeThreads(),
                      self.find_line, biased=True)
            self.locks[tid] = lock

    def find_line(self, tid):
        hook, self.before_read = self.before_read, None
        busy = _line.unpack(ctypes.string_at(self.lines[tid], _line.size))
        if hook is not None:
            hook()                          # runs after the read, before the asker's CAS
        return busy

    def word(self):
        return ctypes.c_int64.from_address(self.word_addr).value


def _without_generation(monkeypatch):
    """The word as it was before the fix: holder and flags, no generation."""
    monkeypatch.setattr(side_lock, "taken", lambda w, mine: mine)
    monkeypatch.setattr(side_lock, "_GEN", 0)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("generation", [False, True], ids=["racy-word", "with-generation"])
def test_a_holder_that_left_and_came_back_is_not_taken_over(monkeypatch, generation):
    """The bug chaos found (one lost message in ~1500 trials, one processor):
    the asker reads the holder's busy line -- outside -- and, before its
    takeover CAS, the holder enters again (it sees WAITERS, hands the word
    on, takes it back) and a third thread asks, setting WAITERS again.  The
    word reads H|WAITERS as before; the asker's CAS must still fail, or two
    senders are inside one side.  Without the generation it does not."""
    if not generation:
        _without_generation(monkeypatch)
    s = Three(monkeypatch)
    holder, asker, third = s.locks[0], s.locks[1], s.locks[2]
    holder.enter()
    holder.leave()                                        # kept: biased, nobody asked
    assert side_lock.holder_field(s.word()) == 1

    def holder_returns_and_third_asks():
        holder.enter()                                    # sees WAITERS: hands on, takes the word back
        assert side_lock.holder_field(s.word()) == 1
        with pytest.raises(WouldBlock):                   # the holder is inside: the third waits,
            third.enter_nowait()                          # leaving WAITERS set
        third.line.now.value = 0

    s.before_read = holder_returns_and_third_asks
    if generation:
        with pytest.raises(WouldBlock):
            asker.enter_nowait()
        assert side_lock.holder_field(s.word()) == 1      # still the holder's, who is inside
        holder.leave()                                    # frees it: someone asked
        asker.enter_nowait()
        assert side_lock.holder_field(s.word()) == 2
    else:
        asker.enter_nowait()                              # the stale CAS succeeds ...
        inside = [t for t, lock in s.locks.items() if _line.unpack(
            ctypes.string_at(s.lines[t], _line.size))[0] == KEY]
        assert inside == [0, 1]                           # ... and two threads are inside


@pytest.mark.timeout(30)
def test_every_acquisition_is_a_new_word(monkeypatch):
    """Kept, asked for, freed, taken over, buried: the holder field says who,
    the generation only grows, and a dead holder's word keeps it."""
    s = Three(monkeypatch)
    a, b = s.locks[0], s.locks[1]
    seen = []
    a.enter(); seen.append(s.word()); a.leave()
    b.enter_nowait(); seen.append(s.word())              # a was outside: taken over
    b.leave()                                             # contended: eager, so it frees the word
    assert side_lock.holder_field(s.word()) == 0
    a.enter(); seen.append(s.word())
    gens = [w >> 24 for w in seen]
    assert gens == sorted(set(gens)) and [side_lock.holder_field(w) for w in seen] == [1, 2, 1]
    assert a.mark_owner_died(0) and not a.mark_owner_died(0)
    w = s.word()
    assert side_lock.holder_field(w) == 0 and w & side_lock._DIED and w >> 24 == gens[-1]
    b.enter_nowait()
    assert b.died and side_lock.holder_field(s.word()) == 2 and s.word() >> 24 == gens[-1] + 1
