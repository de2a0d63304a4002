"""Smoke test: every `vos bench NAME` runs in its quick form and fills every
row with vos's figure, a named peer's figure and their ratio.

Parametrised over the benchmark modules, so a new benchmark is covered the
moment it exists.  No speed is asserted here (machines are shared and noisy):
the figures are for `vos bench`, the tests only check that they exist."""

import io
import math

import pytest
from rich.console import Console

from runtime.cli.bench import _all as all_benchmarks


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", all_benchmarks())
def test_the_benchmark_runs_quickly_and_names_its_peers(name):
    import importlib
    module = importlib.import_module(f"benchmarks.{name}")
    out = io.StringIO()
    rows = module.main(Console(file=out, width=200), quick=True, runs=1)
    assert rows, f"vos bench {name} produced no row"
    for row in rows:
        assert row.peer_name, row
        assert row.vos > 0 and row.peer > 0 and not math.isnan(row.ratio), row
    assert f"vos bench {name}" in out.getvalue()
