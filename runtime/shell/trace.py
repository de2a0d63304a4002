"""`vos sh --trace`: a pipeline as a timeline.

Two sources, merged by time (CLOCK_MONOTONIC is one clock for all processes):

  * every SEND and RECEIVE of every stage, logged by the stage itself with
    its start and end time, bytes, the buffer's fill level just after it,
    and how many times it slept because the buffer was full or empty (the
    growth of the buffer's wait counter during the call); a long stream
    keeps its first and last events;
  * the stages' thread states (RUNNABLE, RUNNING, WAITING on a full or empty
    buffer, EXITED), sampled by the shell (thread 0) from the thread table,
    lock-free, the way `vos top` reads it.  Sampling cannot see a state that
    lasts less than its period; a call that slept says so in its own line.

The summary counters (switches, waits, peak fill) are the runtime's own.
The peak fill is measured by the sender just after each publish
(buffer_ring.Ring._peak), so no fill a SEND line shows exceeds it."""

import time

from ..threads import pid_alive


class Tracer:
    """Samples one pipeline.  Thread 0 only."""

    def __init__(self, kernel, pipeline):
        self.kernel = kernel
        self.pipeline = pipeline
        self.t0_ns = pipeline.started_ns
        self.events = []          # (ms, who, what)
        self._last = {}
        self.final_threads = []
        self.final_buffers = []

    def _buffers(self):
        ids = {b.id: i for i, b in enumerate(self.pipeline.buffers)}
        return [(ids[row["id"]], row) for row in self.kernel.buffers.statistics() if row["id"] in ids]

    def sample(self):
        now = (time.monotonic_ns() - self.t0_ns) / 1e6
        names = dict(zip(self.pipeline.tids, self.pipeline.names))
        threads = [r for r in self.kernel.thread_info() if r["tid"] in names]
        for r in threads:
            if r["state"] == "WAITING" and not r["waits_for"]:
                continue  # woken, on its way out of the wait: its next state follows
            key = ("t", r["tid"])
            state = r["state"] + (f" on {self._wait_words(r['waits_for'])}" if r["waits_for"] else "")
            if self._last.get(key) != state:
                self._last[key] = state
                self.events.append((now, f"thread {r['tid']} ({names[r['tid']]})", state))
        if threads:
            self.final_threads = threads
        buffers = self._buffers()
        if buffers:
            self.final_buffers = buffers
        return len(threads) == len(names) and all(r["state"] in ("EXITED", "FAULTED") or r["pid"] and not pid_alive(r["pid"])
                                                  for r in threads)   # (a VP killed: the shell's join buries it)

    def _wait_words(self, waits_for):
        """'receive 7' -> 'receive from buffer 2' (the pipeline's own numbering)."""
        verb, _, ident = waits_for.partition(" ")
        for i, b in enumerate(self.pipeline.buffers):
            if ident == str(b.id):
                return f"{verb} {'to' if verb == 'send' else 'from'} buffer {i + 1}"
        return waits_for

    def run(self, period=0.0005):
        """Sample until every stage has ended."""
        while not self.sample():
            time.sleep(period)  # the observer's sampling period, not synchronisation

    def timeline(self):
        """[(ms, who, what)]: sampled states and the stages' SEND/RECEIVE logs, by time.
        Call after Pipeline.wait() (which collects the logs)."""
        names = dict(zip(self.pipeline.joined, self.pipeline.names))
        events = list(self.events)
        for tid, log in self.pipeline.logs.items():
            who = f"thread {tid} ({names.get(tid, '?')})"
            for start, end, verb, size, fill, sleeps in log:
                took = (end - start) / 1e3
                what = f"{verb} {size} B" if verb != "end of stream" else "RECEIVE: end of stream"
                if fill is not None:
                    what += f", then {fill} message{'' if fill == 1 else 's'} in the buffer"
                what += f"  (took {took:.0f} µs" if took < 1000 else f"  (took {took / 1e3:.1f} ms"
                if sleeps:
                    why = "full" if verb.startswith("SEND") else "empty"
                    what += f"; slept {'once' if sleeps == 1 else f'{sleeps} times'}: buffer {why}"
                events.append(((end - self.t0_ns) / 1e6, who, what + ")"))
        return sorted(events, key=lambda e: e[0])
