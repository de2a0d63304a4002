"""Benchmarks: each module measures vos against its peers in the same run.

Run them with `vos bench NAME` (`vos bench` lists them).  Every module has

    TITLE = "one line"
    def main(console, quick=False, runs=5) -> list[harness.Row]

and prints its table through `harness.table`.  Machines are shared and noisy:
every figure is the median of `runs` repetitions, and each row names its peer
and the ratio, never a bare absolute time.
"""
