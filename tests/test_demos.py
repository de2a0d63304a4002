"""Smoke test: every demo runs to the end in its quick form and says something.

Parametrised over demos.all_demos(), so a new demo is covered the moment it exists."""

import io

import pytest
from rich.console import Console

import demos

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("name", [n for n, _ in demos.all_demos()])
def test_demo_runs(name):
    mod = demos.get(name)
    assert mod.TITLE and getattr(mod, "SLIDE", None), f"demo {name} needs TITLE and SLIDE"
    out = io.StringIO()
    mod.main(Console(file=out, width=120, force_terminal=False), quick=True)
    text = out.getvalue()
    assert "Step 1" in text or "1." in text, f"demo {name} should narrate in numbered steps"
    assert len(text.splitlines()) > 5
