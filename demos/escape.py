"""逃逸 (escape): the limit of a software MMU, measured -- and what vos can do about it, and what it cannot.

Slide: "虚拟机跳跃、拒绝服务与逃逸", and "安全性: 一定程度上隔离攻击, 隔离效果低于
物理隔离"; "有硬件支持更好: 虚拟内存管理器 (硬件MMU)".

Step 1: isolation through the interface.  A victim thread keeps a secret in
its address space; an attacker thread in another address space LOADs the
same virtual address: a SegmentationFault of the attacker.

Step 2: escape by name.  The attacker leaves the pager: it lists /dev/shm,
finds the kernel's main arena (its name holds the kernel's pid), maps it by
name, and walks the page tables with vos's own layout (minus its checks):
page table entry, page descriptor, frame, bytes.  It reads the secret.  A
process that is no thread of the kernel at all (a fresh interpreter of the
same user) does the same.

Step 3: what vos can do to narrow it, each measured here:
  (a) names: 32 random bits after the pid -- what a blind guess costs,
      against what a look in /dev/shm cost;
  (b) permissions: every segment is 0600 (owner only); a process of another
      user is refused (shown when the demo runs as root and can become
      nobody);
  (c) a check that names the escaping thread: runtime/audit.py reads
      /proc/<pid>/maps, and reports a process that maps the kernel's memory
      without being one of its threads, and a thread that mapped the arena
      a second time, by name.

Step 4: what it cannot do.  A thread that reads the frames through the
mapping it was given (every VP maps the arena: the thread table, the locks
and the frames all live there) reads the secret too, and the check sees
nothing: it looks like every other thread.  Same user, same process, its own
mapping: only an MMU that checks every access -- hardware -- stops that.

What to notice: which steps read the secret, which were refused, and who
was named.
"""

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import time

import _posixshmem
from rich.markup import escape as _esc
from rich.table import Table

from runtime import Kernel
from runtime import audit
from runtime.arena import SHM_DIR, Arena, new_name, parse_name
from runtime.errors import ThreadFailed
from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, LOAD, MAP, STORE_BYTES

TITLE = "escape: a thread past the pager reads another address space; what vos narrows, what only hardware can"
SLIDE = "虚拟机跳跃、拒绝服务与逃逸 — 安全性: 隔离效果低于物理隔离; 有硬件支持更好 (硬件MMU)"
ORDER = 61

SECRET_PAGE = 5
SECRET = b"the vault code is 7-3-1-9"


# --- the attacker's tools (run in the attacking process) ------------------------------------------

def find_arena(kernel_pid):
    """List /dev/shm and pick the main arena of the kernel running as kernel_pid."""
    names = [n for n in os.listdir(SHM_DIR) if (p := parse_name(n)) and p[0] == kernel_pid and p[1] == n]
    return names[0] if names else None


def steal(arena_name, my_as=None):
    """Map the arena by name and read every resident page of every other
    address space, as the pager would translate it: [(as id, page, frame, text)]."""
    from runtime.kernel import Kernel as _K
    k = _K.attach_by_name(arena_name)                  # vos's own layout code, none of its checks
    try:
        return walk(k, my_as)
    finally:
        k.detach()


def walk(k, my_as):
    from runtime.memory.tables import A_ID, AS_ENTRY, D_WORD, DESC, PTE_VALID, RESIDENT, STATE_MASK
    vm, buf = k.vm, k.arena.buf
    get = vm.get
    found = []
    for s in range(vm.geo.max_as):
        as_id = get(vm.o_as + s * AS_ENTRY + A_ID)
        if as_id <= 0 or as_id == my_as:
            continue
        pt = vm.o_pt + 8 * vm.geo.vpages * s
        for page in range(vm.geo.vpages):
            pte = get(pt + 8 * page)
            if not pte & PTE_VALID:
                continue
            desc = (pte >> 2) - 1
            word = get(vm.o_descs + desc * DESC + D_WORD)
            if word & STATE_MASK != RESIDENT:
                continue
            frame = word >> 32
            at = vm.frames.at(frame)
            for text in re.findall(rb"[ -~]{12,}", bytes(buf[at:at + vm.geo.page_size])):
                found.append((as_id, page, frame, at, text.decode()))
    return found


# --- the threads --------------------------------------------------------------------------------

def victim(ps):
    STORE_BYTES(SECRET_PAGE * ps, SECRET)
    return "stored"


def polite_attacker(ps):
    """Through the interface: LOAD the victim's address in my own address space."""
    return LOAD(SECRET_PAGE * ps)


def escape_by_name(my_as, report):
    """A VP of the kernel that maps the arena by name, and keeps it mapped
    until told (so that the check can see it)."""
    t0 = time.perf_counter()
    name = find_arena(os.getppid())                     # the kernel's pid: this VP's parent (ps shows it too)
    looked = time.perf_counter() - t0
    arena = Arena.attach(name)                          # a second mapping of the arena, past the pager
    found = steal(name, my_as)
    report.send(json.dumps({"name": name, "looked_us": looked * 1e6, "found": found}).encode())
    report.receive()                                    # hold the mapping until thread 0 has looked
    arena.close()
    return len(found)


def escape_in_place(my_as):
    """A VP that reads the frames through the mapping every VP has."""
    from runtime.context import current
    return walk(current().kernel, my_as)


# --- measurements of the narrowing ------------------------------------------------------------

def guess_cost(kernel_pid, tries):
    """Seconds per blind shm_open of a made-up name (each one fails)."""
    t0 = time.perf_counter()
    for _ in range(tries):
        try:
            _posixshmem.shm_open(f"/vos_{kernel_pid}_{secrets.token_hex(4)}", os.O_RDONLY)
        except FileNotFoundError:
            pass
    return (time.perf_counter() - t0) / tries


def other_user_opens(name, uid=65534):
    """As root: does a process of user `uid` get the segment open?  'refused'
    / 'opened' / None (not root: cannot become another user here)."""
    if os.geteuid() != 0:
        return None
    pid = os.fork()
    if pid == 0:                                       # the child: become nobody, try, say how it went
        code = 3
        try:
            os.setgid(uid)
            os.setuid(uid)
            fd = _posixshmem.shm_open("/" + name, os.O_RDONLY)
            os.close(fd)
            code = 0
        except PermissionError:
            code = 13
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {0: "opened", 13: "refused"}.get(os.waitstatus_to_exitcode(status), "failed to try")


@contextlib.contextmanager
def _quiet_stderr():
    """A thread that faults prints its traceback on stderr (the runtime's
    report); the demo shows the fault itself, so its VP gets /dev/null."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# --- the demo ---------------------------------------------------------------------------------

def main(console, quick=False):
    rows = []
    with Kernel(frames=64) as k:
        ps = k.config.page_size
        vault, other = CREATE_ADDRESS_SPACE(), CREATE_ADDRESS_SPACE()
        MAP(vault, ALLOCATE_BLOCK(ps), SECRET_PAGE, "rw")
        MAP(other, ALLOCATE_BLOCK(ps), SECRET_PAGE + 1, "rw")
        k.join(ALLOCATE_THREAD(victim, vault, ps), timeout=30)

        console.print(f"[bold]Step 1.[/] A victim thread in address space {vault} STOREs a secret at page "
                      f"{SECRET_PAGE}. An attacker in address space {other} LOADs the same address through the "
                      "pager:")
        try:
            with _quiet_stderr():
                tid = ALLOCATE_THREAD(polite_attacker, other, ps)
            k.join(tid, timeout=30)
            outcome = "[red]it read it[/]"
        except ThreadFailed as e:
            outcome = f"[green]{e.exc_type}[/]: {_esc(e.message)}"
        console.print(f"  {outcome}")
        console.print("  Isolation through the interface holds: the address means nothing in the attacker's "
                      "address space.\n")
        rows.append(("1. LOAD through the pager", "refused" if "Fault" in outcome else "read", "-"))

        console.print("[bold]Step 2.[/] The attacker leaves the pager: it lists /dev/shm, finds the main arena "
                      "of the kernel (the name holds the kernel's pid), maps it by name, and walks the page "
                      "tables with vos's own layout: entry, descriptor, frame, bytes.")
        from runtime.textbook import ALLOCATE_BOUNDED_BUFFER
        report = ALLOCATE_BOUNDED_BUFFER(2)
        thief = ALLOCATE_THREAD(escape_by_name, other, other, report)
        got = json.loads(report.receive(timeout=60))
        hits = [f for f in got["found"] if SECRET.decode() in f[4]]
        for as_id, page, frame, at, text in hits[:1]:
            console.print(f"  address space {as_id}, page {page}: the page table says frame {frame}; the frame "
                          f"is at arena offset {at:#x}; it holds [red]{_esc(text)!r}[/]")
        console.print(f"  Thread {thief} found the arena ({got['name']}) by listing /dev/shm in "
                      f"{got['looked_us']:.0f} µs, and read the secret: [red]{'yes' if hits else 'no'}[/].")
        rows.append(("2a. a thread maps the arena by name", "[red]read[/]" if hits else "nothing", ""))

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in sys.path if p]))
        outsider = subprocess.Popen([sys.executable, "-m", "demos._escape_outsider", str(os.getpid())],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=root)
        try:
            line = outsider.stdout.readline()
            out = json.loads(line) if line else {"pid": outsider.pid, "found": []}
            out_hits = [f for f in out["found"] if SECRET.decode() in f[4]]
            console.print(f"  A process that is no thread of the kernel (pid {out['pid']}, a fresh interpreter of "
                          f"the same user) does the same: read the secret: "
                          f"[red]{'yes' if out_hits else 'no'}[/].\n")
            rows.append(("2b. another process, same user", "[red]read[/]" if out_hits else "nothing", ""))

            console.print("[bold]Step 3.[/] What vos can do to narrow it, measured:")
            tries = 2000 if quick else 20000
            per = guess_cost(os.getpid(), tries)
            hours = per * 2 ** 31 / 3600
            rows.append(("3a. guess the arena's name blind", f"{hours:,.0f} h for half the names",
                         f"a look in {SHM_DIR}: {got['looked_us']:.0f} µs"))
            console.print(f"  (a) Names. A main arena is named {_esc(new_name(12345)[:4])}<pid>_<8 hex digits>: 32 "
                          f"random bits (secrets.token_hex(4)). A blind guess costs {per * 1e6:.1f} µs (a failed "
                          f"shm_open, {tries:,} tried), so half the names take {hours:,.0f} hours. But a look in "
                          f"/dev/shm took {got['looked_us']:.0f} µs: on Linux the directory lists every name to "
                          "every user. The random bits stop a guess, not a look.")
            perms = audit.permissions(k)
            modes = sorted({f"{mode:04o}" for _, mode, _ in perms})
            owners = sorted({uid for _, _, uid in perms})
            refused = other_user_opens(k.arena.name)
            tried = {"refused": "[green]refused (PermissionError)[/]", "opened": "[red]opened it[/]",
                     None: "not tried (this demo is not root, so it cannot become another user)"}.get(
                refused, refused)
            console.print(f"  (b) Permissions. The kernel's {len(perms)} segments have mode {', '.join(modes)}, owner "
                          f"uid {', '.join(map(str, owners))}: owner only. A process of user nobody that tries to "
                          f"open the main arena: {tried}. The attackers of step 2 were the same user.")
            rows.append(("3b. another user opens the arena", "refused" if refused == "refused" else str(refused),
                         "mode " + ", ".join(modes)))
            t0 = time.perf_counter()
            findings = audit.audit(k)
            scan_ms = (time.perf_counter() - t0) * 1e3
            console.print(f"  (c) A check that names the escaping thread (runtime/audit.py: /proc/<pid>/maps of "
                          f"every process, {scan_ms:.1f} ms):")
            for f in findings:
                console.print(f"      [yellow]{_esc(str(f))}[/]")
            named_thread = any(f.tid == thief for f in findings)
            named_outsider = any(f.pid == out["pid"] and f.tid is None for f in findings)
            rows.append(("3c. the check", f"named {int(named_thread) + int(named_outsider)} of 2",
                         f"{scan_ms:.1f} ms a scan"))
        finally:
            outsider.stdin.close()
            outsider.wait(timeout=30)
            outsider.stdout.close()
        report.send(b"done")
        k.join(thief, timeout=30)
        console.print()

        console.print("[bold]Step 4.[/] What it cannot do: a thread that reads the frames through the mapping "
                      "every VP is given (the thread table, the locks and the frames all live in that arena).")
        inside = ALLOCATE_THREAD(escape_in_place, other, other)
        t0 = time.perf_counter()
        seen_inside = []
        while not seen_inside and time.perf_counter() - t0 < 5:
            seen_inside = [f for f in audit.audit(k) if f.tid == inside]
            if any(r["tid"] == inside and r["state"] == "EXITED" for r in k.thread_info()):
                break
        found = k.join(inside, timeout=60)
        read = any(SECRET.decode() in f[4] for f in found)
        console.print(f"  Thread {inside} read the secret: [red]{'yes' if read else 'no'}[/]; the check named it: "
                      f"{'yes' if seen_inside else '[red]no[/]'} -- its one mapping is the one every thread has.")
        rows.append(("4. read through its own mapping", "[red]read[/]" if read else "nothing",
                     "named" if seen_inside else "[red]not named[/]"))

    table = Table(title="who read the secret, who was stopped, who was named", title_justify="left")
    for col in ("attempt", "outcome", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    console.print("  Notice: the pager checks the accesses that go through it; a plain read of the arena does "
                  "not go through it. vos can hide nothing from its own user, can shut other users out, and "
                  "can notice a second mapping or a stranger; an access through a mapping a thread already has "
                  "can only be stopped by an MMU that checks every access: that is why real systems put the "
                  "MMU in hardware (硬件MMU).")
