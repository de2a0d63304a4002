"""The concept processor: the lecture's recipe for starting a thread, and switching by sp.

Questions:
  * after ALLOCATE_THREAD, is the stack exactly the recipe's three frames
    (exit entry, the function's frame, its entry) with sp at the third?
  * does starting (load sp, RET) enter the function with its frame on top?
  * does YIELD save sp in the thread record and resume the other thread by RET?
  * does a thread that returns land in the exit entry, and the machine halt?
  * is the memory the address space's, reached through the pager (a fault in
    the guard page is a SegmentationFault; another address space cannot see it)?
  * are bad programs refused with the line named?
"""

import pytest

from runtime import Kernel
from runtime.concept import AssemblyError, Machine, assemble, decode, encode
from runtime.concept.machine import R_SP, R_STATE, R_TOP, RUNNABLE
from runtime.errors import KernelError, SegmentationFault
from runtime.textbook import ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD

pytestmark = pytest.mark.timeout(60)

PROGRAM = """
count:
    LOCAL 0
    PRINT
    YIELD
    LOCAL 0
    ADD -1
    SETLOCAL 0
    JNZ count
    DROP
    RET
exit:
    EXIT
"""


def test_the_recipe_builds_three_frames_with_sp_at_the_third():
    with Kernel(frames=32):
        m = Machine.boot()
        labels = m.load(PROGRAM)
        i = m.allocate_thread("count", 7)
        top = LOAD(m.record(i, R_TOP))
        assert [w for _, w in m.stack(i)] == [labels["exit"], 7, labels["count"]]
        assert LOAD(m.record(i, R_SP)) == top - 24 and LOAD(m.record(i, R_STATE)) == RUNNABLE
        assert [k for k, _ in m.events] == ["recipe"] * 3


def test_start_is_a_return_into_the_function_with_its_frame_on_top():
    with Kernel(frames=32):
        m = Machine.boot()
        labels = m.load(PROGRAM)
        i = m.allocate_thread("count", 7)
        top = LOAD(m.record(i, R_TOP))
        m.start()
        assert (m.ip, m.sp, m.running) == (labels["count"], top - 16, i)
        m.step()                                   # LOCAL 0: the argument, from the frame
        assert m.acc == 7


def test_yield_saves_sp_and_the_other_thread_goes_on_by_ret():
    with Kernel(frames=32):
        m = Machine.boot()
        labels = m.load(PROGRAM)
        a, b = m.allocate_thread("count", 2), m.allocate_thread("count", 3)
        m.start()
        m.step(), m.step()                         # LOCAL 0, PRINT
        sp_before = m.sp
        m.step()                                   # YIELD
        assert LOAD(m.record(a, R_SP)) == sp_before - 8             # the return address pushed, sp saved
        assert LOAD(sp_before - 8) == labels["count"] + 3 * 8       # ... which is the instruction after YIELD
        assert m.running == b and m.ip == labels["count"]           # b started by the same RET
        m.run()
        assert m.output == [(a, 2), (b, 3), (a, 1), (b, 2), (b, 1)]
        assert m.state(a) == m.state(b) == "EXITED" and m.halted
        exits = [t for k, t in m.events if k == "exit"]
        assert exits[0] == f"thread {a} returned into exit: EXITED" and "halts" in exits[-1]


def run_machine_here():
    m = Machine.boot(base_page=8)
    m.load(PROGRAM)
    m.allocate_thread("count", 2)
    m.start()
    m.run()
    return m.output, m.faults(), m.code


def test_the_machines_memory_is_an_address_space_reached_through_the_pager():
    with Kernel(frames=32) as k:
        space = CREATE_ADDRESS_SPACE()
        output, faults, code = k.join(ALLOCATE_THREAD(run_machine_here, space), timeout=30)
        assert output == [(0, 2), (0, 1)] and faults == 3          # code, table, one stack: demand-zero
        with pytest.raises(SegmentationFault):
            LOAD(code)                                              # not mapped in thread 0's address space


def test_a_stack_that_overflows_faults_in_its_guard_page():
    with Kernel(frames=32):
        m = Machine.boot(threads=1)
        m.load("deeper:\n CALL deeper\nexit:\n EXIT\n")
        m.allocate_thread("deeper", 0)
        m.start()
        with pytest.raises(SegmentationFault) as e:
            m.run()
        assert e.value.page == m.stack_pages[0] - 1                 # the unmapped page under the stack


def test_bad_programs_are_refused_with_the_line_named():
    with pytest.raises(AssemblyError, match="line 2: no instruction 'FLY'"):
        assemble("a:\n FLY\n", 0)
    with pytest.raises(AssemblyError, match="line 1: PUSH takes one operand"):
        assemble("PUSH\n", 0)
    with pytest.raises(AssemblyError, match="no label 'nowhere'"):
        assemble("JMP nowhere\n", 0)
    assert decode(encode("ADD", -5)) == ("ADD", -5)
    with Kernel(frames=32):
        m = Machine.boot()
        with pytest.raises(AssemblyError, match="exit entry"):
            m.load("count:\n RET\n")
        m.load(PROGRAM)
        with pytest.raises(KernelError, match="no function 'nothing'"):
            m.allocate_thread("nothing", 1)
