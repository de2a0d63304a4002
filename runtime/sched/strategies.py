"""Who runs next: the strategies of a controlled run.

At every step the baton holder calls `choose` with the threads that may run
(in slot order) and itself; the answer depends only on the board (the
seed, the step number, the prefix, the priorities), never on time or on
which process asks.  So the same program, schedule and seed give the same
run, under fork or spawn, on one core or many.

    rr       no preemption: the current thread runs on while it can, then
             the next one in slot order (round robin)
    random   a random walk: any runnable thread, uniformly, at every step
    pct      probabilistic concurrency testing (Burckhardt et al., ASPLOS
             2010): random distinct priorities, the highest runnable runs;
             at d - 1 random steps (the change points) the running thread
             drops below every other.  A bug of depth d is found with
             probability at least 1 / (n k^(d-1)) per run.
    prefix   the explorer's: follow the given choices, then run on without
             preempting (the current thread while it can, else the lowest
             slot); sleep sets prune what was explored already
    replay   a token's choices, exactly; anything else is a mismatch
    pause    `vos step`'s: follow the choices, then stop and ask

Random numbers come from splitmix64 of (seed, step): a counter, not a state,
so nothing has to be carried from thread to thread.
"""

from .board import (H_CHANGES, H_CREATED, H_DEPTH, H_HORIZON, H_PREFIX_LEN, H_SEED, MAX_CHANGES, PAUSE, PCT, PREFIX,
                    R_PRIORITY, RANDOM, REPLAY, RR)

_M = (1 << 64) - 1


def mix(*values):
    """splitmix64 over the values: a well-spread 64-bit number."""
    z = 0x9E3779B97F4A7C15
    for v in values:
        z = (z + (v & _M) + 0x9E3779B97F4A7C15) & _M
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
        z ^= z >> 31
    return z


def boot(board, strategy, seed, depth, horizon):
    """Set the strategy's constant state (kernel process, at boot)."""
    from .board import H_STRATEGY
    board.put(H_STRATEGY, strategy)
    board.put(H_SEED, seed)
    board.put(H_DEPTH, depth)
    board.put(H_HORIZON, horizon)
    if strategy == PCT:
        for i in range(1, min(depth, MAX_CHANGES + 1)):
            board.put(H_CHANGES + i - 1, 1 + mix(seed, 7919, i) % max(1, horizon))


def priority_for(board, created):
    """PCT's priority of the created-th thread (distinct, at least d)."""
    return board.get(H_DEPTH) + mix(board.get(H_SEED), 1000003, created) % (1 << 40)


def on_create(board, slot):
    n = board.get(H_CREATED)
    board.put(H_CREATED, n + 1)
    board.set_rec(slot, R_PRIORITY, priority_for(board, n + 1))


def change_point(board, step, current):
    """PCT: at a change point, the running thread drops below everyone."""
    for i in range(1, min(board.get(H_DEPTH), MAX_CHANGES + 1)):
        if board.get(H_CHANGES + i - 1) == step and current is not None:
            board.set_rec(current, R_PRIORITY, board.get(H_DEPTH) - i)


MISMATCH, STOP = "mismatch", "stop"


def choose(board, strategy, step, cands, current, tid_of, after=None):
    """The slot to run at `step`, among `cands` (slots, ascending), given the
    slot that ran the last step (`current`, or None when it cannot run).
    Returns a slot, or MISMATCH (a replayed choice cannot run), or STOP
    (pause: the choices are used up).  after: the slot that YIELDs (the
    non-preemptive strategies then move on to the next thread in slot order)."""
    if strategy == RR:
        return run_on(cands, current, after)
    if strategy == RANDOM:
        return cands[mix(board.get(H_SEED), step) % len(cands)]
    if strategy == PCT:
        change_point(board, step, current)
        return max(cands, key=lambda s: (board.rec(s, R_PRIORITY), -s))
    if step < board.get(H_PREFIX_LEN):
        want = board.prefix(step)
        for s in cands:
            if tid_of(s) == want:
                return s
        return MISMATCH
    if strategy == PAUSE:
        return STOP
    if strategy == REPLAY:
        return MISMATCH
    assert strategy == PREFIX
    return run_on(cands, current, after)


def run_on(cands, current, after):
    """Without preempting: the current thread while it can run, else (or
    after a YIELD) the next one in slot order, round robin."""
    if current in cands:
        return current
    if after is not None:
        later = [s for s in cands if s > after]
        return later[0] if later else cands[0]
    return cands[0]
