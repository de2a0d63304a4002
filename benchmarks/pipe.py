"""`vos bench pipe`: the lecture's pipe, measured in one run.

First, two short pipelines, `ls -la DIR | grep cse` and `seq 1 1000 | wc -l`
(a few hundred bytes: starting the stages is the whole cost), against
`sh -c` with coreutils, each way taking turns with sh:

  warm  one session's kernel with its pool of ready VPs, as in an
        interactive `vos sh` (session.MACHINE); before each command the
        session's `between` work is done and the last command's VPs are
        back in the pool, untimed, as while a user types
  cold  a kernel booted for the one line and shut down after it, as
        `vos sh -c` does (session.one_shot), minus the interpreter's start
        (`vos bench startup` measures that); with the same Python programs
        in processes forked per stage over os.pipe as a second peer: the
        floor of any design that forks a Python process per stage
Goals from the issue: warm at least 1.5x the real shell, cold at least 1.0x.

Then the same long pipelines through:
  (a) vos   `vos sh`: each stage a VP, joined by the runtime's bounded buffers
  (b) pipe  the same Python programs in processes joined by os.pipe
  (c) queue the same Python programs joined by multiprocessing.Queue
  (d) sh    the real shell with GNU coreutils

Pipelines: `cat BIG | wc -c` and `cat BIG | grep -c WORD` on a big file and
`seq 1 N | grep 7 | wc -l`.  Which pipelines the transport limits and which
the programs is measured, not assumed: every stage also runs alone in vos
with its input from a file (made by the real shell); no pipeline beats its
slowest stage, nor its stages' total work spread over the CPUs, and where
that bound is half the time of (b) or more, the programs dominate (Python's
grep is far slower than any transport); elsewhere the kernel pipe of (b) is
the bottleneck: the transport.

vos's `cat FILE` reads each chunk straight into the bounded buffer
(BufferWriter.send_into) and `wc -c` counts the chunks where they lie
(BufferReader.read_view): one copy in all, where a kernel pipe makes three
(read, write, read).

Reported: bytes per second through the first link (the first stage's output
over the pipeline's wall time); ratios > 1 mean vos is ahead.  Goals from
the issue: `cat | wc -c` at least 1.5x the real shell; vos at least 1.5x
(b) wherever the transport is the bottleneck (the rows say which those are).
"""

import multiprocessing
import os
import subprocess
import tempfile
import time

from runtime import Kernel
from runtime.shell.parser import parse
from runtime.shell.pipeline import FdReader, FdWriter
from runtime.shell.programs import PROGRAMS
from runtime.shell.session import MACHINE, READY_BUFFERS, Session, one_shot

from .harness import Row, median, table

TITLE = "pipelines: vos sh vs the same programs over os.pipe / mp.Queue, and the real shell"
CHUNK = 1 << 16
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --- (b) and (c): the same programs, other transports ---------------------------------

class QueueReader:
    def __init__(self, q):
        self.q, self.left, self.done = q, b"", False

    def read(self, n=-1):
        if self.left:
            data, self.left = self.left, b""
        elif self.done:
            return b""
        else:
            data = self.q.get()
            if data is None:
                self.done = True
                return b""
        if 0 <= n < len(data):
            data, self.left = data[:n], data[n:]
        return data


class QueueWriter:
    def __init__(self, q):
        self.q = q

    def write(self, data):
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            self.q.put(bytes(view[i:i + CHUNK]))
        return len(data)

    def flush(self):
        pass

    def close(self):
        """End of stream; waits until the queue's feeder thread has flushed
        everything (the stage then leaves with os._exit, which would drop it)."""
        self.q.put(None)
        self.q.close()
        self.q.join_thread()


def _stage(argv, reader, writer, cwd):
    try:
        PROGRAMS[argv[0]](argv, reader, writer, FdWriter(2), cwd)
    except BrokenPipeError:
        pass
    finally:
        if hasattr(writer, "close"):
            writer.close()
        os._exit(0)


def run_other(line, cwd, transport):
    """Run a pipeline of built-in programs in forked processes joined by
    os.pipe or multiprocessing.Queue; output to /dev/null."""
    (pipeline,) = parse(line, 0)
    cmds = pipeline.commands
    mp = multiprocessing.get_context("fork")
    links = []
    for _ in cmds[1:]:
        if transport == "pipe":
            r, w = os.pipe()
            links.append((r, w))
        else:
            links.append(mp.Queue(maxsize=16))
    devnull = os.open(os.devnull, os.O_WRONLY)
    procs = []
    for i, cmd in enumerate(cmds):
        if transport == "pipe":
            reader = FdReader(links[i - 1][0]) if i else FdReader(os.open(os.devnull, os.O_RDONLY))
            writer = FdWriter(links[i][1]) if i < len(cmds) - 1 else FdWriter(devnull)
        else:
            reader = QueueReader(links[i - 1]) if i else FdReader(os.open(os.devnull, os.O_RDONLY))
            writer = QueueWriter(links[i]) if i < len(cmds) - 1 else FdWriter(devnull)
        p = mp.Process(target=_stage, args=(cmd.argv, reader, writer, cwd))
        p.start()
        procs.append(p)
        if transport == "pipe":  # the parent keeps no copy of an end it does not use
            if i:
                os.close(links[i - 1][0])
            if i < len(cmds) - 1:
                os.close(links[i][1])
    for p in procs:
        p.join()
    os.close(devnull)


# --- (a) and (d) ----------------------------------------------------------------------

def run_vos(session, line):
    status = session.run_line(line)
    if status not in (0, 1):
        raise RuntimeError(f"vos sh failed on {line!r}: status {status}")


def run_sh(line, cwd):
    subprocess.run(["sh", "-c", line], cwd=cwd, stdout=subprocess.DEVNULL, check=False,
                   env={**os.environ, "LC_ALL": "C"})


def _make_files(d, big_mb):
    big = os.path.join(d, "big.txt")
    line = b"the quick brown fox jumps over the lazy dog in cse 101\n"
    block = line * (CHUNK // len(line) * 16)
    with open(big, "wb") as f:
        for _ in range(big_mb * 2**20 // len(block)):
            f.write(block)
    listing = os.path.join(d, "listing")
    os.mkdir(listing)
    for i in range(60):
        open(os.path.join(listing, f"{'cse' if i % 4 == 0 else 'ee'}{100 + i}.txt"), "w").close()
    return os.path.getsize(big)


def _stage_inputs(line, d):
    """Each stage's input, made by the real shell from the stages before it:
    [(stage text, path of its input or None)], and the first stage's output size."""
    stages = [x.strip() for x in line.split("|")]
    env = {**os.environ, "LC_ALL": "C"}
    out, nbytes = [(stages[0], None)], 0
    for i in range(1, len(stages)):
        path = os.path.join(d, f".input{i}")
        with open(path, "wb") as f:
            subprocess.run(["sh", "-c", " | ".join(stages[:i])], cwd=d, stdout=f, env=env, check=True)
        nbytes = nbytes or os.path.getsize(path)
        out.append((stages[i], path))
    return out, nbytes


def _timed(fn, runs):
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return median(samples)


# --- warm and cold: a short pipeline's whole cost ---------------------------------------

SHORT = ["ls -la listing | grep cse", "seq 1 1000 | wc -l"]


def _interleaved(ways, runs):
    """{way: median seconds}, the ways taking turns so that drift hits all alike."""
    times = {w: [] for w in ways}
    for _ in range(runs):
        for w, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            times[w].append(time.perf_counter() - t0)
    return {w: median(ts) for w, ts in times.items()}


def short_pipelines(d, runs):
    """The warm and cold rows (see the module doc), with the files of `d`."""
    runs = max(runs, 15)                 # milliseconds each: many runs are cheap, and the host is noisy
    rows = []
    devnull = os.open(os.devnull, os.O_WRONLY)
    null_in = os.open(os.devnull, os.O_RDONLY)
    try:
        with Kernel(start_method="fork", **MACHINE) as k:
            session = Session(k, stdin_fd=null_in, stdout_fd=devnull, ready_buffers=READY_BUFFERS)
            session.cwd = d

            def between():                   # as the interactive loop, before its prompt
                session.between()
                k.pool.settle()

            for line in SHORT:
                between()
                t = _interleaved({"vos": lambda: run_vos(session, line), "between": between,
                                  "sh": lambda: run_sh(line, d)}, runs)
                rows.append(Row(f"{line}  (warm)", "s", t["vos"], "real sh + coreutils", t["sh"],
                                higher_is_better=False, goal=1.5,
                                note=f"a session's kernel, pool of {MACHINE['pool']}; between commands "
                                     f"(untimed) {t['between'] * 1e3:.1f} ms"))
        for line in SHORT:
            t = _interleaved({"vos": lambda: _status_ok(line, one_shot(line, null_in, devnull, cwd=d)),
                              "sh": lambda: run_sh(line, d), "pipe": lambda: run_other(line, d, "pipe")}, runs)
            rows.append(Row(f"{line}  (cold)", "s", t["vos"], "real sh + coreutils", t["sh"],
                            higher_is_better=False, goal=1.0, note="a kernel booted for the line"))
            rows.append(Row(f"{line}  (cold)", "s", t["vos"], "same programs, a fork per stage, os.pipe",
                            t["pipe"], higher_is_better=False, note="the floor of forking Python stages"))
    finally:
        os.close(devnull)
        os.close(null_in)
    return rows


def _status_ok(line, status):
    if status not in (0, 1):
        raise RuntimeError(f"vos sh failed on {line!r}: status {status}")


def main(console, quick=False, runs=5):
    big_mb = 32 if quick else 256
    seq_n = 200_000 if quick else 2_000_000
    cases = [                                   # (pipeline, goal against the real shell)
        ("cat big.txt | wc -c", 1.5),
        ("cat big.txt | grep -c cse", None),
        (f"seq 1 {seq_n} | grep 7 | wc -l", None),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vos-bench-pipe-") as d:
        _make_files(d, big_mb)
        short = short_pipelines(d, runs)
        table(console, "vos bench pipe: short pipelines, warm and cold", short, max(runs, 15))
        devnull = os.open(os.devnull, os.O_WRONLY)
        null_in = os.open(os.devnull, os.O_RDONLY)
        try:
            with Kernel(start_method="fork") as k:
                session = Session(k, stdin_fd=null_in, stdout_fd=devnull)
                session.cwd = d
                for line, goal in cases:
                    stages, nbytes = _stage_inputs(line, d)
                    ways = {"vos": lambda: run_vos(session, line),
                            "pipe": lambda: run_other(line, d, "pipe"),
                            "queue": lambda: run_other(line, d, "queue"),
                            "sh": lambda: run_sh(line, d)}
                    times = {w: [] for w in ways}
                    for _ in range(runs):
                        for w, fn in ways.items():  # interleaved, so drift hits every way alike
                            t0 = time.perf_counter()
                            fn()
                            times[w].append(time.perf_counter() - t0)
                    # Which is the bottleneck?  Each stage alone in vos, its input from a file
                    # (no pipe at all).  No pipeline can beat its slowest stage, nor the stages'
                    # total work spread over the CPUs: where that bound is half the time of the
                    # same programs over os.pipe (b) or more, the programs dominate; otherwise
                    # the transport does (or, for a few bytes, process start-up).
                    alone = [_timed(lambda: run_vos(session, f"{stage} < {path}" if path else stage), runs)
                             for stage, path in stages]
                    share = max(max(alone), sum(alone) / CPUS) / median(times["pipe"])
                    if nbytes < 1e5:
                        what = "start-up dominates"
                    else:
                        what = "programs dominate" if share >= 0.5 else "transport-bound"
                    note = f"{what}: the stages alone take {share:.0%} of (b)'s time"
                    if nbytes >= 1e5:            # bytes per second through the first link
                        value = {w: nbytes / median(ts) for w, ts in times.items()}
                        unit, higher = "B/s", True
                    else:                        # a few bytes: the time of one whole pipeline
                        value = {w: median(ts) for w, ts in times.items()}
                        unit, higher = "s", False
                    for way, peer_name, peer_goal in (("sh", "real sh + coreutils", goal),
                                                      ("pipe", "same programs, os.pipe",
                                                       1.5 if what == "transport-bound" else None),
                                                      ("queue", "same programs, mp.Queue", None)):
                        rows.append(Row(line, unit, value["vos"], peer_name, value[way], higher_is_better=higher,
                                        goal=peer_goal, note=note))
        finally:
            os.close(devnull)
            os.close(null_in)
    return short + table(console, f"vos bench pipe ({big_mb} MB file)", rows, runs)
