"""Soft modularity vs enforced modularity: one wild STORE, in one address space and in two.

Slide: 2) 虚拟内存 — the drawbacks of threads sharing one memory: errors
propagate (错误传播), it is unsafe (不安全), isolation rests on soft
modularity (软模块化, the code's own discipline).  Virtual memory: a manager
that keeps memories apart (permissions), and a level of indirection that
resolves every address in the context of the thread (间接层, 名称解析), so the
memories are isolated by construction.

Two modules: a *logger* that appends 512-byte records to its one-page buffer,
and a *bank* that keeps four balances.  The logger has the oldest bug there
is: it never checks that its buffer is full.

Step 1 (one address space, soft modularity).  Both modules are threads of one
address space; the bank's page sits right after the logger's buffer.  The
logger runs past its buffer and overwrites the balances.  Nobody faults:
both threads end "successfully"; the bank's total is silently wrong.

Step 2 (two address spaces, enforced modularity).  The same code, each module
in its own address space.  Behind the logger's buffer there is nothing: its
first wild STORE is a SegmentationFault *of the logger's thread* (named with
its thread, address and page), and the bank's total is exact.

Step 3 (sharing on purpose).  A block mapped "rw" in one address space and
"r" in the other is a mailbox: the logger posts, the bank reads; a STORE by
the bank is a ProtectionFault.

Step 4 (the honest limit).  This pager isolates *through its interface*.  A
thread that reaches past LOAD/STORE into the arena with plain Python can still
write any frame: the lecture's "escape" is one attribute access away, which
is exactly why real systems put the MMU in hardware.

What to notice: the program text of both modules is the same in steps 1 and 2;
only the address spaces differ.
"""

import contextlib
import os

from rich.table import Table

from runtime import Kernel
from runtime.errors import ThreadFailed
from runtime.textbook import (ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD, LOAD_BYTES, MAP, STORE,
                              STORE_BYTES)

TITLE = "a wild STORE corrupts silently in one address space and faults only its own thread in two"
SLIDE = "2) 虚拟内存: 软模块化 (错误传播, 不安全) vs 强制模块化 — 虚拟内存使内存互相隔离"
ORDER = 40

LOG_PAGE, BANK_PAGE, MAIL_PAGE = 4, 5, 9
RECORD = 512
ACCOUNTS, START = 4, 100


def bank_open(ps):
    for i in range(ACCOUNTS):
        STORE(BANK_PAGE * ps + 8 * i, START)


def bank_audit(ps):
    return [LOAD(BANK_PAGE * ps + 8 * i) for i in range(ACCOUNTS)]


def logger(ps, records):
    """Append `records` records to the log buffer; the bug: no bounds check."""
    for n in range(records):
        STORE_BYTES(LOG_PAGE * ps + n * RECORD, f"record {n:03d} ".encode().ljust(RECORD, b"."))
    return records


def post(ps, text):
    STORE_BYTES(MAIL_PAGE * ps, text.encode().ljust(64, b"\0"))


def read_mail(ps):
    return LOAD_BYTES(MAIL_PAGE * ps, 64).rstrip(b"\0").decode()


def scribble_on_the_bank(ps):
    STORE(MAIL_PAGE * ps, 1)


def escape(frame_offset):
    """A hostile thread that does not use LOAD/STORE at all."""
    from runtime.context import current
    buf = current().kernel.arena.buf
    buf[frame_offset:frame_offset + 8] = (-999).to_bytes(8, "little", signed=True)


@contextlib.contextmanager
def _quiet_stderr():
    """A thread that faults prints its traceback on stderr (the runtime's
    report); the demo shows the fault itself, so its VPs get /dev/null."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _run(k, space, procedure, *args):
    with _quiet_stderr():
        tid = ALLOCATE_THREAD(procedure, space, *args)
    try:
        return tid, "exit", k.join(tid, timeout=60)
    except ThreadFailed as e:
        return tid, e.exc_type, e.message


def main(console, quick=False):
    records = 12  # 12 x 512 bytes = 1.5 pages: the last 4 records run past the buffer
    rows = []
    with Kernel(frames=32) as k:
        ps = k.config.page_size
        console.print(f"[bold]Step 1.[/] One address space (软模块化). The logger's buffer is page {LOG_PAGE}, "
                      f"the bank's balances are page {BANK_PAGE}: neighbours in one memory.")
        shared_space = CREATE_ADDRESS_SPACE()
        MAP(shared_space, ALLOCATE_BLOCK(ps), LOG_PAGE, "rw")
        MAP(shared_space, ALLOCATE_BLOCK(ps), BANK_PAGE, "rw")
        _run(k, shared_space, bank_open, ps)
        _, how, result = _run(k, shared_space, logger, ps, records)
        _, _, balances = _run(k, shared_space, bank_audit, ps)
        _, _, page = _run(k, shared_space, LOAD_BYTES, BANK_PAGE * ps, 24)
        console.print(f"  logger: {how} after writing {result} records (it thinks all went well)")
        console.print(f"  bank balances: {balances} (expected {[START] * ACCOUNTS})")
        console.print(f"  the bank's page now begins with {page!r}")
        console.print("  [red]Silent corruption[/]: the wild STOREs landed in the bank's page; no thread faulted, "
                      "the error propagated (错误传播).\n")
        rows.append(("1. one address space", f"{how} ({result} records)", "garbage", "[red]corrupted, silently[/]"))

        console.print("[bold]Step 2.[/] Two address spaces (强制模块化): the same code, each module in its own "
                      "address space. Address ≠ memory: each thread resolves addresses in its own context.")
        log_space, bank_space = CREATE_ADDRESS_SPACE(), CREATE_ADDRESS_SPACE()
        MAP(log_space, ALLOCATE_BLOCK(ps), LOG_PAGE, "rw")
        MAP(bank_space, ALLOCATE_BLOCK(ps), BANK_PAGE, "rw")
        _run(k, bank_space, bank_open, ps)
        tid, how, message = _run(k, log_space, logger, ps, records)
        _, _, balances = _run(k, bank_space, bank_audit, ps)
        console.print(f"  logger (thread {tid}): [red]{how}[/]: {message}")
        console.print(f"  bank balances: {balances}  total {sum(balances)} — [green]exact[/]: the fault stayed in "
                      "the thread that made it.\n")
        rows.append(("2. two address spaces", how, sum(balances), "[green]intact; the logger faulted[/]"))

        console.print("[bold]Step 3.[/] Sharing on purpose: one block mapped into both address spaces, "
                      "\"rw\" for the logger, \"r\" for the bank — a mailbox.")
        mail = ALLOCATE_BLOCK(ps)
        MAP(log_space, mail, MAIL_PAGE, "rw")
        MAP(bank_space, mail, MAIL_PAGE, "r")
        _run(k, log_space, post, ps, "ledger rotated at 12 records")
        _, _, text = _run(k, bank_space, read_mail, ps)
        _, how, message = _run(k, bank_space, scribble_on_the_bank, ps)
        console.print(f"  the bank reads: {text!r}")
        console.print(f"  the bank tries to write the mailbox: [red]{how}[/]: {message}\n")
        rows.append(("3. shared block, r / rw", "posted", sum(balances), f"reader's STORE: {how}"))

        console.print("[bold]Step 4.[/] The honest limit: isolation holds [italic]through the interface[/]. "
                      "A thread that skips LOAD/STORE and writes the arena with plain Python reaches any frame.")
        owners = k.vm.statistics()["frame_owner"]
        frame = owners.index(bank_space)
        offset = k.vm.frames.at(frame)
        _run(k, log_space, escape, offset)
        _, _, balances = _run(k, bank_space, bank_audit, ps)
        console.print(f"  after the escape, bank balances: {balances} — hardware MMUs exist for this reason; "
                      "a Python-level pager can only enforce what goes through it.\n")
        rows.append(("4. escape past the pager", "plain Python", sum(balances), "[red]corrupted: no MMU to stop it[/]"))

    table = Table(title="one logger bug, four worlds", title_justify="left")
    for col in ("step", "logger", "bank total", "outcome"):
        table.add_column(col)
    for step, logger_, total, outcome in rows:
        table.add_row(step, str(logger_), str(total), outcome)
    console.print(table)
    console.print("  Notice: soft modularity depends on every module being right; enforced modularity only on "
                  "the pager being right (强制模块化的基础: 虚拟内存 + 线程 = 虚拟计算机).")
