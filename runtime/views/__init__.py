"""What people look at: rich renderables made from plain data.

    tables.py   threads, buffers, locks, memory, kernels, a pipeline's trace
    traces.py   a controlled run's steps (one column per thread), a failure,
                race reports, the replay line

Used by the command line (runtime/cli) and by the demos; the runtime core
never imports rich.
"""
