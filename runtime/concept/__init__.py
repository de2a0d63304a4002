"""The concept processor: how a thread starts (线程是怎么运行起来的).

vos's virtual processors are host processes, so the lecture's central claim
-- a thread is its stack and frames, not its code -- is invisible there.
This package makes it visible: a small processor that is not the host's (an
interpreter: 模拟, A 变 B) with an instruction pointer, a stack pointer and a
handful of instructions, whose memory is pages of a vos address space reached
through the pager (every fetch, push and pop is a LOAD or a STORE), and a
thread manager that starts a thread by the lecture's recipe and switches
threads by saving and loading sp.

    isa.py       the instructions, their encoding, an assembler
    machine.py   the processor, the memory layout, the thread manager

    from runtime.concept import Machine
    m = Machine.boot()                 # in the calling thread's address space
    m.load(PROGRAM)                    # must have the exit entry: "exit: EXIT"
    m.allocate_thread("count", 2)
    m.allocate_thread("count", 3)
    m.start(); m.run()
    m.output                           # [(thread, value), ...] from PRINT
"""

from .isa import AssemblyError, assemble, decode, disassemble, encode
from .machine import Machine, MachineHalted

__all__ = ["Machine", "MachineHalted", "AssemblyError", "assemble", "decode", "disassemble", "encode"]
