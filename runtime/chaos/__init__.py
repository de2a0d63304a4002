"""Chaos: the runtime under faults, trial after trial.

"Nothing lost, ever" is a claim about every instant at which a thread, or the
kernel itself, can die.  A test that kills once shows one instant; a bug that
shows once in 500 trials needs thousands.  Each trial here boots a kernel,
starts real virtual processors, kills one at a random moment (SIGKILL: no
handler runs, no lock is let go), lets the survivors finish, and checks
what the contract promises:

    buffer   3 senders and 2 receivers on one bounded buffer (1..8 slots,
             1024 bytes, messages of 20..320 bytes carrying sender, sequence
             number and CRC); one VP killed.  No message of a survivor lost,
             duplicated or torn; each sender's order kept.
    lock     3 threads add to one counter under a lock; one killed, maybe
             inside the critical section.  The lock is handed over
             (OwnerDied, once), nobody hangs, the counter is exact up to the
             one increment the victim may have torn.
    kernel   the kernel process itself is SIGKILLed while its VPs page,
             block (ACQUIRE, AWAIT, RECEIVE, SEND, join, a processor) or
             spin.  Every VP must be gone within 2 s; `vos clean` removes
             the rest.
    memory   3 threads in 3 address spaces write and verify twice as many
             pages as there are frames (swap); one killed mid-way, maybe
             inside a page fault.  Every survivor's every word reads back.

Every trial is repeatable from its seed (its choices; the timing of real
processes is not) and reports an Outcome.  `vos chaos` runs many with a
progress bar; the default test suite runs a bounded number, `pytest -m slow`
thousands.
"""

import dataclasses
import importlib

KINDS = ("buffer", "lock", "kernel", "memory")


@dataclasses.dataclass
class Outcome:
    """What one trial found.  All zero / False / None: the contract held."""
    kind: str
    seed: int
    setting: str = ""             # the trial's random choices, in words
    hang: bool = False            # a survivor did not finish in time
    torn: int = 0                 # messages or words that read back wrong
    lost: int = 0                 # messages a survivor sent that nobody received
    duplicated: int = 0           # messages received twice
    leaked: int = 0               # segments, swap files or processes left behind
    gone_s: float | None = None   # kernel trials: seconds until every VP was gone
    detail: str = ""              # what went wrong, for a human

    @property
    def ok(self):
        return not (self.hang or self.torn or self.lost or self.duplicated or self.leaked) and \
            (self.gone_s is None or self.gone_s <= GONE_WITHIN)


GONE_WITHIN = 2.0   # seconds: the contract for VPs of a killed kernel


def trial(kind, seed):
    """Run one trial of `kind` with `seed`; returns its Outcome (with what it
    left behind in this process's name counted as `leaked`)."""
    if kind not in KINDS:
        raise ValueError(f"no chaos trial {kind!r}; there are {', '.join(KINDS)}")
    before = _leftovers()
    out = importlib.import_module(f"{__name__}.{kind}").trial(seed)
    left = _leftovers() - before
    if left:
        out.leaked += len(left)
        out.detail += f"left behind: {sorted(left)[:5]}; "
    return out


def kill(k, tid):
    """SIGKILL thread tid's process.  False if it had already ended."""
    import os
    import signal
    pid = next((r["pid"] for r in k.thread_info() if r["tid"] == tid), 0)
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, ValueError):
        return False
    return pid > 0


def _leftovers():
    """This process's vos segments and swap files, and its live child processes."""
    import glob
    import os
    import tempfile

    import psutil

    from .. import arena
    mine = {n for n in arena.list_segments() if arena.parse_name(n)[0] == os.getpid()}
    mine |= {p for p in glob.glob(os.path.join(tempfile.gettempdir(), f"{arena.PREFIX}{os.getpid()}_*.swap"))}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "forkserver" not in " ".join(child.cmdline()) \
                    and "resource_tracker" not in " ".join(child.cmdline()):
                mine.add(f"pid {child.pid}")
        except psutil.Error:
            pass
    return mine


def run(kinds=KINDS, trials=100, seed=0, progress=None):
    """`trials` trials of each kind, seeds seed, seed+1, ...; a list of Outcomes.
    progress(outcome) is called after each one."""
    out = []
    for kind in kinds:
        for s in range(seed, seed + trials):
            o = trial(kind, s)
            out.append(o)
            if progress is not None:
                progress(o)
    return out


__all__ = ["KINDS", "Outcome", "GONE_WITHIN", "trial", "run"]
