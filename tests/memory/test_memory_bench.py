"""Smoke test: `vos bench memory` runs in its quick form and fills every row."""

import io
import math

import pytest
from rich.console import Console

import benchmarks.memory


@pytest.mark.timeout(120)
def test_the_memory_benchmark_runs_quickly_and_names_its_peers():
    out = io.StringIO()
    rows = benchmarks.memory.main(Console(file=out, width=200), quick=True, runs=1)
    assert len(rows) == 7
    for row in rows:
        assert row.peer_name and row.vos > 0 and row.peer > 0 and not math.isnan(row.ratio)
    assert "vos bench memory" in out.getvalue()
