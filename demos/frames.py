"""线程是怎么运行起来的 (how a thread starts): two threads' stacks, frame by frame, and a YIELD between them.

Slide: "线程是怎么运行起来的? 1. 生成一个空的线程(容器), 拥有1个空的栈; 2. 第1个
栈帧的返回地址应该是管理线程的某个专门函数的入口地址; 3. 第2个栈帧是初始化函数的
栈帧, sp指向第3个栈帧, 调用返回指令.  重要结论: 线程的关键并不在于内存中的代码和
数据, 而在于栈和栈帧的设立."

vos's own threads are host processes, so their stacks cannot be seen.  This
demo runs the recipe on the concept processor (runtime/concept/): a
processor that is not the host's (模拟: A 变 B), three registers (ip, sp,
acc), a handful of instructions, its memory pages of a vos address space
reached through the pager (every fetch, push and pop a LOAD or a STORE).

Step 1 loads the program: one function, `count`, that prints its argument
n, YIELDs, and counts n down in its frame; and the thread manager's exit
entry.  Step 2 makes thread 0 by the recipe, step 3 thread 1: three frames
each (the exit entry's address; count's frame, its argument; count's
address, where sp points).  Step 4 starts thread 0: load its sp, RET.
Step 5 is a YIELD: push the return address, save sp, load the other
thread's sp, RET -- which starts thread 1 exactly as it would resume a
thread that had yielded.  Step 6 switches back, step 7 shows a thread
returning into the exit entry, step 8 the end.

What to notice: a thread that has never run and a thread that yielded look
alike -- a stack whose top word is where to go on; switching threads saves
one register and loads one (sp); the code is one copy, shared, and the two
threads differ only by their stacks.
"""

from rich.markup import escape
from rich.table import Table

from runtime import Kernel
from runtime.concept import Machine
from runtime.concept.isa import WORD, disassemble
from runtime.textbook import LOAD

TITLE = "how a thread starts: the recipe's three frames on a concept processor, two stacks, a YIELD between"
SLIDE = "线程是怎么运行起来的 — 第1个栈帧: 线程管理的入口地址; 第2个: 初始化函数的栈帧; sp指向第3个, 调用返回指令"
ORDER = 15

PROGRAM = """
count:                ; count(n): n is the word in this thread's frame
    LOCAL 0           ; acc <- n
    PRINT             ; say n
    YIELD             ; give the processor to the other thread
    LOCAL 0
    ADD -1
    SETLOCAL 0        ; n <- n - 1, in the frame
    JNZ count         ; again while n != 0
    DROP              ; free the frame
    RET               ; return ... into the exit entry (frame 1)
exit:                 ; the thread manager's exit entry
    EXIT
"""
ARGS = (2, 3)


def picture(m, title):
    """Both threads' stacks, top (high address) first, sp marked."""
    table = Table(title=title, title_justify="left", show_lines=False)
    cells = []
    for i in range(m.threads):
        state = m.state(i)
        table.add_column(f"thread {i} ({state})", no_wrap=True)
        lines = []
        rows = m.stack(i) if state != "FREE" else []
        for depth, (addr, word) in enumerate(rows):
            top = depth == len(rows) - 1
            frame = f"frame {depth + 1}" if depth < 3 else ""
            what = m.describe(word)
            shown = f"→ {what}" if not what.lstrip("-").isdigit() else f"n = {what}" if depth == 1 else what
            mark = "sp▸" if top else "   "
            lines.append(f"{mark} {addr:#07x}  {escape(shown):<11} {frame}")
        if not rows:
            lines.append("    (empty)")
        cells.append("\n".join(lines))
    table.add_row(*cells)
    return table


def regs(m):
    if m.running is None:
        return "the processor is idle"
    return f"on the processor: thread {m.running}, ip = {m.ip:#x} ({m.describe(m.ip)}), sp = {m.sp:#x}"


def run_until(m, kinds):
    """Step until an event of one of `kinds` happens; the events since: [(kind, text)]."""
    start = len(m.events)
    while m.step():
        if any(k in kinds for k, _ in m.events[start:]):
            break
    return m.events[start:]


def say(console, events, steps=True):
    """Print events (kind, text); steps=False leaves the single instructions out."""
    for kind, text in events:
        if steps or kind != "step":
            console.print(f"    {escape(text)}")


def main(console, quick=False):
    with Kernel(frames=32):
        m = Machine.boot(threads=2)
        labels = m.load(PROGRAM)
        console.print(f"[bold]Step 1.[/] The program, loaded at {m.code:#x} (one instruction a word, every fetch a "
                      "LOAD through the pager):")
        for name, addr in sorted(labels.items(), key=lambda x: x[1]):
            console.print(f"    {addr:#07x}  {name}:")
            nxt = min((a for a in labels.values() if a > addr), default=m.code + WORD * len(PROGRAM.split("\n")))
            a = addr
            while a < nxt:
                word = LOAD(a)
                if word == 0:
                    break
                console.print(f"    {a:#07x}      {disassemble(word, labels)}")
                a += WORD
        console.print()

        for i, n in enumerate(ARGS):
            console.print(f"[bold]Step {2 + i}.[/] ALLOCATE_THREAD(count, {n}) by the recipe:")
            before = len(m.events)
            m.allocate_thread("count", n)
            say(console, m.events[before:])
            console.print(picture(m, f"after the recipe for thread {i}"))
        console.print("  Thread 1's stack is thread 0's with another n: the code is one copy; a thread is its "
                      "stack.\n")

        console.print("[bold]Step 4.[/] Start: load thread 0's sp and execute RET (调用返回指令). RET pops "
                      "frame 3 into ip: count begins, its frame (n) on top, the exit entry under it.")
        before = len(m.events)
        m.start()
        say(console, m.events[before:])
        console.print(f"    {regs(m)}")
        console.print(picture(m, "thread 0 runs count(2)"))

        console.print("[bold]Step 5.[/] Thread 0 prints n and reaches YIELD: a CALL into the thread manager "
                      "(the return address pushed), which saves sp, loads thread 1's sp and RETs.")
        say(console, run_until(m, ("switch",)))
        console.print(f"    {regs(m)}")
        console.print(picture(m, "thread 1 started by the same RET that resumes a thread"))
        console.print("  Thread 0 now looks like a new thread: its top word is where to go on (count+3, after "
                      "the YIELD).\n")

        console.print("[bold]Step 6.[/] Thread 1 prints and YIELDs: the same four moves the other way.")
        say(console, run_until(m, ("switch",)))
        console.print(f"    {regs(m)}")
        console.print(picture(m, "back in thread 0, after its YIELD"))

        console.print("[bold]Step 7.[/] The threads take turns until thread 0's n reaches 0: DROP frees its "
                      "frame and RET pops frame 1, the exit entry (第1个栈帧的返回地址).")
        say(console, [e for e in run_until(m, ("exit",)) if e[0] != "step"][-4:])
        console.print(f"    {regs(m)}")
        console.print(picture(m, "thread 0 has returned into the exit entry"))

        console.print("[bold]Step 8.[/] Thread 1 runs alone to its end.")
        m.run()
        say(console, [e for e in m.events if e[0] == "exit"][-2:])
        shown = ", ".join(f"thread {t}: {v}" for t, v in m.output)
        console.print(f"  PRINT, in order: {shown}.")
        console.print(f"  {m.steps} instructions; every fetch, push and pop went through the pager "
                      f"({m.faults()} page faults: the code, table and stack pages, zero-filled on first touch). "
                      "This processor is not the host's: it is emulated (模拟, A 变 B).")
        console.print("  Notice: 线程的关键并不在于内存中的代码和数据, 而在于栈和栈帧的设立 -- to start a thread, "
                      "build the stack a switched-out thread would have; to switch, save sp and load sp.")
