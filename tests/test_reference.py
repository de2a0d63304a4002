"""docs/REFERENCE.md, the users' reference, stays true.

Every name `from runtime.textbook import *` gives, every parameter of
Kernel.__init__ and every part setting of config.PART_SETTINGS (each with
its default), and every error class of runtime.errors is documented there.  A
call, option or error added later fails here until the page describes it.
"""

import inspect
import os
import re

import pytest

import runtime
from runtime import Kernel, errors, textbook
from runtime.config import PART_SETTINGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(runtime.__file__)))
REFERENCE = os.path.join(ROOT, "docs", "REFERENCE.md")


@pytest.fixture(scope="module")
def page():
    with open(REFERENCE, encoding="utf-8") as f:
        return f.read()


def table_row(page, name):
    """The table row that documents `name` (first cell), or None."""
    for line in page.splitlines():
        if line.startswith((f"| `{name}`", f"| `{name}(")):
            return line
    return None


def gives_default(row, default):
    """Does the row show this default in backticks (a str in either quotes)?"""
    forms = [repr(default)] + ([f'"{default}"'] if isinstance(default, str) else [])
    return any(f"`{form}`" in row for form in forms)


def test_every_textbook_call_is_documented(page):
    missing = [name for name in textbook.__all__
               if not re.search(rf"`{name}\(", page)]
    assert not missing, f"docs/REFERENCE.md does not document {missing} (as `NAME(...)`)"


def test_every_kernel_parameter_is_documented_with_its_default(page):
    params = [p for p in inspect.signature(Kernel.__init__).parameters.values()
              if p.name != "self" and p.kind is not p.VAR_KEYWORD]
    assert params, "Kernel.__init__ has no parameters?"
    for p in params:
        row = table_row(page, p.name)
        assert row is not None, f"Kernel option {p.name!r} has no row in docs/REFERENCE.md"
        assert gives_default(row, p.default), f"the row of {p.name!r} does not give its default {p.default!r}"


def test_every_part_setting_is_documented_with_its_default(page):
    for name, (default, _meaning) in PART_SETTINGS.items():
        row = table_row(page, name)
        assert row is not None, f"Kernel setting {name!r} (config.PART_SETTINGS) has no row in docs/REFERENCE.md"
        assert gives_default(row, default), f"the row of {name!r} does not give its default {default!r}"


def test_every_error_is_documented(page):
    classes = [name for name, obj in vars(errors).items()
               if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__]
    assert "KernelError" in classes and len(classes) > 20
    missing = [name for name in classes if table_row(page, name) is None]
    assert not missing, f"docs/REFERENCE.md's errors table lacks {missing}"


def test_the_kernel_methods_are_documented(page):
    for name in ("k.join(tid, timeout=None)", "k.statistics()", "k.thread_info()", "k.address_space",
                 "k.page_size", "k.address(page, offset=0)"):
        assert f"`{name}`" in page, f"{name} is not documented"


def test_code_blocks_fit_80_columns(page):
    wide = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", page, re.S):
        wide += [line for line in block.splitlines() if len(line) > 80]
    assert not wide, f"code lines wider than 80 columns: {wide}"


def test_readme_points_here_and_nobody_points_at_the_contract():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert "docs/REFERENCE.md" in f.read()
    stale = []
    for folder in ("runtime", "demos", "benchmarks", "docs"):
        for base, _dirs, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith((".py", ".md")):
                    with open(os.path.join(base, f), encoding="utf-8") as src:
                        if "TEXTBOOK.md" in src.read():
                            stale.append(os.path.join(base, f))
    assert not stale, f"users do not have TEXTBOOK.md; point these at docs/REFERENCE.md: {stale}"
