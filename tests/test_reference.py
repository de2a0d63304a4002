"""docs/REFERENCE.md, the users' reference, stays true.

Every name `from runtime.textbook import *` gives, every parameter of
Kernel.__init__ and every part setting of runtime/options.py (with its
default), and every error class of runtime.errors is documented there.  A
call, option or error added later fails here until the page describes it.
"""

import inspect
import os
import re

import pytest

import runtime
from runtime import Kernel, errors, textbook
from runtime.kernel import Config
from runtime.options import PART_OPTIONS

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
        assert f"`{p.default!r}`" in row, f"the row of {p.name!r} does not give its default {p.default!r}"


def test_every_part_setting_is_documented_with_its_default(page):
    for name, option in PART_OPTIONS.items():
        row = table_row(page, name)
        assert row is not None, f"Kernel setting {name!r} (runtime/options.py) has no row in docs/REFERENCE.md"
        assert f"`{option.shown}`" in row, f"the row of {name!r} does not give its default {option.shown}"


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


def test_every_part_setting_the_runtime_reads_is_in_the_table():
    """A part reads its settings with config.get("name", ...): each must be in
    runtime/options.py (which Kernel() checks and this page documents)."""
    read = set()
    for folder, _dirs, files in os.walk(os.path.dirname(runtime.__file__)):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(folder, f), encoding="utf-8") as src:
                    text = src.read()
                read |= set(re.findall(r"""\bget\(\s*["']([a-z_]+)["']""", text)) & _config_names(text)
    assert read, "found no config.get calls: has the pattern changed?"
    assert read <= set(PART_OPTIONS), f"settings read but not in runtime/options.py: {read - set(PART_OPTIONS)}"


def _config_names(text):
    """Names read through a Config: `config.get("x"`, `c.get("x"` or `get = config.get; get("x"`."""
    names = set(re.findall(r"""config\.get\(\s*["']([a-z_]+)["']""", text))
    names |= set(re.findall(r"""\bc\.get\(\s*["']([a-z_]+)["']""", text))
    if re.search(r"get\s*=\s*config\.get", text):
        names |= set(re.findall(r"""\bget\(\s*["']([a-z_]+)["']""", text))
    return names


def test_config_refuses_a_setting_not_in_the_table():
    with pytest.raises(KeyError, match="runtime/options.py"):
        Config().get("no_such_setting")


def test_the_documented_defaults_are_the_ones_the_parts_use():
    effective = {
        "policy": lambda k: k.vm.policy.name,
        "swap_pages": lambda k: None if k.vm.geo.swap_pages == max(16384, 4 * k.config.frames) else "other",
        "resident_limit": lambda k: k.vm.resident_limit,
        "page_limit": lambda k: k.vm.page_limit,
        "max_address_spaces": lambda k: k.vm.geo.max_as,
        "address_space_pages": lambda k: k.vm.geo.vpages,
        "max_blocks": lambda k: k.vm.geo.max_blocks,
        "max_locks": lambda k: k.locks.capacity,
        "sync_slice": lambda k: k.locks.slice,
        "sync_spin": lambda k: k.locks.spin,
        "max_eventcounts": lambda k: k.eventcounts.capacity,
        "max_buffers": lambda k: k.buffers.max,
        "buffer_malloc_tuning": lambda k: k.buffers.malloc_tuning,
    }
    with Kernel() as k:
        for name, read in effective.items():
            assert read(k) == PART_OPTIONS[name].default, f"{name}: the part uses {read(k)!r}"
        assert k.eventcounts.slice == PART_OPTIONS["sync_slice"].default


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
