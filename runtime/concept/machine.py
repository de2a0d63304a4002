"""The concept processor and its thread manager: how a thread starts (线程是怎么运行起来的).

The lecture's recipe, run as written:

    1. 生成一个空的线程(容器), 拥有1个空的栈
       make an empty container (a thread record) with an empty stack;
    2. 第1个栈帧的返回地址 = 管理线程的某个专门函数的入口地址
       the first frame is a return address: the thread manager's exit entry;
    3. 第2个栈帧是初始化函数的栈帧; sp指向第3个栈帧, 调用返回指令
       the second frame is the initialisation function's (its argument);
       the third is its entry address; sp points at it, and RET starts it.

and its conclusion: 线程的关键并不在于内存中的代码和数据, 而在于栈和栈帧的设立
-- a thread is its stack and frames, not its code.  Switching threads saves
one register and loads another: sp (the instruction pointer is on the stack,
as a return address: "能否将指令引用存于环境引用中?").

The machine is a processor that is not the host's (模拟, emulation: A 变 B):
an interpreter with three registers (ip, sp, acc) and the instructions of
isa.py, whose every memory access -- fetching an instruction, pushing,
popping, reading and writing the thread table -- is a LOAD or a STORE of the
vos address space it runs in, through the pager.

Memory (virtual pages of that address space, from `base_page`; page size P):

    page base            code       the program, one instruction a word
    page base + 1        table      the thread manager's table (below)
    page base + 2        (unmapped) a guard page: a stack that overflows faults
    page base + 3        stack of thread 0 (grows down from the page's end)
    page base + 4        (unmapped) guard
    page base + 5        stack of thread 1, and so on

    table, at address T:            thread record i, at T + 64 + 32 i:
      T + 0   current thread          + 0  state   FREE 0, RUNNABLE 1, RUNNING 2, EXITED 3
      T + 8   threads made so far     + 8  sp      saved while the thread does not run
                                      + 16 top     the end of its stack page (sp of an empty stack)
                                      + 24 entry   the initialisation function it started with

Who writes what: everything here runs in the one vos thread that calls
`run` / `step`; the machine's registers are private to it; its memory is the
address space's, shared with whatever other vos thread maps those pages.
"""

from .. import memory as _memory
from ..context import current as _current
from ..errors import KernelError
from ..textbook import ALLOCATE_BLOCK, LOAD, MAP, STORE
from ..threads import O_AS
from . import isa
from .isa import WORD

FREE, RUNNABLE, RUNNING, EXITED = 0, 1, 2, 3
STATE_NAMES = ["FREE", "RUNNABLE", "RUNNING", "EXITED"]
T_CURRENT, T_MADE, T_RECORDS, RECORD = 0, 8, 64, 32
R_STATE, R_SP, R_TOP, R_ENTRY = 0, 8, 16, 24
EXIT_LABEL = "exit"                      # the thread manager's exit entry in every program


class MachineHalted(KernelError):
    """The concept machine has no runnable thread left (or was never started)."""


class Machine:
    """One concept computer in a vos address space: memory laid out as above,
    a processor, a thread manager.  `events` records what happened, step by
    step, for whoever draws it (vos demo frames)."""

    def __init__(self, as_id=None, base_page=16, threads=2):
        ctx = _current()
        if as_id is None:
            t = ctx.kernel.threads
            as_id = t.get64(t.off(ctx.tid, O_AS))        # the calling thread's address space
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"Machine(threads={threads!r}): at least one thread")
        self.as_id = as_id
        self.page = ctx.kernel.config.page_size
        self.code = base_page * self.page
        self.table = (base_page + 1) * self.page
        self.stack_pages = [base_page + 3 + 2 * i for i in range(threads)]
        self.threads = threads
        self.labels = {}
        self.ip = self.sp = self.acc = 0
        self.running = None                  # index of the thread on the processor
        self.output = []                     # (thread, value) for each PRINT
        self.events = []                     # (kind, text) in order: "recipe", "switch", "exit", "step"
        self.steps = 0
        self.halted = True

    @classmethod
    def boot(cls, as_id=None, base_page=16, threads=2):
        """A machine with its pages allocated and MAPped ("rw") in address
        space as_id (default: the caller's)."""
        m = cls(as_id, base_page, threads)
        for page in [base_page, base_page + 1] + m.stack_pages:
            MAP(m.as_id, ALLOCATE_BLOCK(m.page), page, "rw")
        STORE(m.table + T_CURRENT, -1)
        STORE(m.table + T_MADE, 0)
        return m

    # --- the program ------------------------------------------------------------------

    def load(self, program):
        """Assemble `program` at the code page and STORE it there.  It must
        have the thread manager's exit entry, a line `exit: EXIT`."""
        words, labels = isa.assemble(program, self.code)
        if EXIT_LABEL not in labels or isa.decode(_word_at(words, labels[EXIT_LABEL] - self.code))[0] != "EXIT":
            raise isa.AssemblyError(f"the program needs the thread manager's exit entry: a line "
                                    f"'{EXIT_LABEL}: EXIT'")
        if len(words) * WORD > self.page:
            raise isa.AssemblyError(f"the program has {len(words)} instructions; one page holds {self.page // WORD}")
        for i, w in enumerate(words):
            STORE(self.code + WORD * i, w)
        self.labels = labels
        return labels

    # --- the thread manager: the lecture's recipe ----------------------------------------

    def record(self, i, field=0):
        return self.table + T_RECORDS + RECORD * i + field

    def allocate_thread(self, entry, arg):
        """ALLOCATE_THREAD on the concept machine, the recipe step by step.
        Returns the thread's index."""
        if entry not in self.labels:
            raise KernelError(f"no function {entry!r} in the program (labels: {sorted(self.labels)})")
        i = LOAD(self.table + T_MADE)
        if i >= self.threads:
            raise KernelError(f"the machine has stacks for {self.threads} threads")
        STORE(self.table + T_MADE, i + 1)
        top = (self.stack_pages[i] + 1) * self.page
        sp = top                                                    # 1. an empty container, an empty stack
        STORE(self.record(i, R_TOP), top)
        STORE(self.record(i, R_ENTRY), self.labels[entry])
        STORE(self.record(i, R_SP), sp)
        self.events.append(("recipe", f"1. thread {i}: an empty container with an empty stack, sp = {sp:#x}"))
        sp -= WORD
        STORE(sp, self.labels[EXIT_LABEL])                          # 2. frame 1: return into the exit entry
        self.events.append(("recipe", f"2. frame 1: the return address {EXIT_LABEL} (the thread manager's exit "
                                      f"entry) at {sp:#x}"))
        sp -= WORD
        STORE(sp, arg)                                              # 3. frame 2: the init function's frame
        sp -= WORD
        STORE(sp, self.labels[entry])                               #    frame 3: its entry; sp points at it
        STORE(self.record(i, R_SP), sp)
        STORE(self.record(i, R_STATE), RUNNABLE)
        self.events.append(("recipe", f"3. frame 2: {entry}'s frame (its argument {arg}); frame 3: the address "
                                      f"{entry}; sp = {sp:#x} points at it. RUNNABLE"))
        return i

    def start(self):
        """Run the first runnable thread: load its sp and execute RET."""
        nxt = self._next_runnable(-1)
        if nxt is None:
            raise MachineHalted("no thread to start: allocate one first")
        self.halted = False
        self._switch_to(nxt, "start")

    def _next_runnable(self, after):
        made = LOAD(self.table + T_MADE)
        for j in range(1, made + 1):
            i = (after + j) % made if made else 0
            if LOAD(self.record(i, R_STATE)) in (RUNNABLE, RUNNING):
                return i
        return None

    def _switch_to(self, i, why):
        """Load thread i's sp and RET: whatever it was doing (or its init
        function, the first time) goes on."""
        self.sp = sp = LOAD(self.record(i, R_SP))
        STORE(self.record(i, R_STATE), RUNNING)
        STORE(self.table + T_CURRENT, i)
        self.running = i
        self.ip = self._pop()                                        # RET
        self.events.append(("switch", f"{why}: load sp = {sp:#x} of thread {i}, RET -> "
                                      f"{self.describe(self.ip)}"))

    def _yield(self):
        """YIELD: a CALL into the thread manager (the return address pushed),
        then save sp, choose the next thread, load its sp, RET."""
        me = self.running
        self._push(self.ip + WORD)
        STORE(self.record(me, R_SP), self.sp)
        STORE(self.record(me, R_STATE), RUNNABLE)
        self.events.append(("switch", f"YIELD in thread {me}: push the return address "
                                      f"{self.describe(self.ip + WORD)}, save sp = {self.sp:#x}"))
        self._switch_to(self._next_runnable(me), "YIELD")

    def _exit(self):
        """The exit entry: this thread is done; run the next, or halt."""
        me = self.running
        STORE(self.record(me, R_STATE), EXITED)
        STORE(self.record(me, R_SP), self.sp)
        self.events.append(("exit", f"thread {me} returned into {EXIT_LABEL}: EXITED"))
        nxt = self._next_runnable(me)
        if nxt is None:
            self.halted = True
            self.running = None
            STORE(self.table + T_CURRENT, -1)
            self.events.append(("exit", "no thread left: the machine halts"))
            return
        self._switch_to(nxt, "EXIT")

    # --- the processor ---------------------------------------------------------------------

    def _push(self, value):
        self.sp -= WORD
        STORE(self.sp, value)

    def _pop(self):
        v = LOAD(self.sp)
        self.sp += WORD
        return v

    def step(self):
        """Fetch, decode and execute one instruction.  False once halted."""
        if self.halted:
            return False
        word = LOAD(self.ip)                                          # fetch, through the pager
        name, operand = isa.decode(word)
        ip, self.ip = self.ip, self.ip + WORD
        self.steps += 1
        if name == "PUSH":
            self._push(operand)
        elif name == "DROP":
            self.sp += WORD
        elif name == "LOCAL":
            self.acc = LOAD(self.sp + WORD * operand)
        elif name == "SETLOCAL":
            STORE(self.sp + WORD * operand, self.acc)
        elif name == "ADD":
            self.acc += operand
        elif name == "JNZ":
            if self.acc:
                self.ip = operand
        elif name == "JMP":
            self.ip = operand
        elif name == "CALL":
            self._push(self.ip)
            self.ip = operand
        elif name == "RET":
            self.ip = self._pop()
        elif name == "PRINT":
            self.output.append((self.running, self.acc))
        elif name == "YIELD":
            self.ip = ip                                              # _yield pushes ip + 8
            self._yield()
            return not self.halted
        elif name == "EXIT":
            self._exit()
            return not self.halted
        else:                                                         # HALT
            self.halted = True
        self.events.append(("step", f"thread {self.running}: {isa.disassemble(word, self.labels)}"))
        return not self.halted

    def run(self, limit=100_000):
        """Step until the machine halts (at most `limit` instructions)."""
        for _ in range(limit):
            if not self.step():
                return self.steps
        raise KernelError(f"the concept machine ran {limit} instructions without halting")

    # --- looking at it ----------------------------------------------------------------------

    def describe(self, value):
        """A word as the drawing shows it: a code address by its label (+k), else the number."""
        if self.code <= value < self.code + self.page and value % WORD == 0:
            best = max(((a, n) for n, a in self.labels.items() if a <= value), default=None)
            if best is not None:
                a, n = best
                return n if a == value else f"{n}+{(value - a) // WORD}"
        return str(value)

    def stack(self, i):
        """Thread i's stack from its top down to its sp: [(address, word)].
        The sp is the processor's for the running thread, the saved one else."""
        top = LOAD(self.record(i, R_TOP))
        sp = self.sp if i == self.running else LOAD(self.record(i, R_SP))
        return [(a, LOAD(a)) for a in range(top - WORD, sp - WORD, -WORD)]

    def state(self, i):
        return STATE_NAMES[LOAD(self.record(i, R_STATE))]

    def faults(self):
        """Page faults the machine's address space has taken (the pager's count)."""
        for row in _memory.statistics()["address_spaces"]:
            if row["id"] == self.as_id:
                return row["demand_zero_faults"] + row["swap_in_faults"]
        return 0


def _word_at(words, offset):
    """The word at `offset` bytes into an assembled program (before it is stored)."""
    return words[offset // WORD]


__all__ = ["Machine", "MachineHalted", "FREE", "RUNNABLE", "RUNNING", "EXITED"]
