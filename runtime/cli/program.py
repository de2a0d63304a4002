"""Finding the program a student names: FILE[:FUNCTION].

`vos explore lab.py` runs lab.py's `program(k)` (or `main(k)`), as thread 0
of a controlled kernel.  The file is imported as a module by its own name,
its folder first on sys.path, so that its functions travel by name to the
VPs that run them (a pool VP unpickles `lab.worker`).  A module-level
`KERNEL = dict(...)` gives the kernel options the program needs.
"""

import importlib
import os
import sys

DEFAULT_FUNCTIONS = ("program", "main")


class ProgramError(Exception):
    """FILE[:FUNCTION] names nothing runnable; the message says why."""


def load(spec):
    """(program function, kernel options, 'FILE:FUNCTION') for a spec."""
    path, _, name = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    if not path.endswith(".py") or not os.path.isfile(path):
        raise ProgramError(f"{path!r} is not a Python file (give FILE.py or FILE.py:FUNCTION)")
    path = os.path.abspath(path)
    folder, module_name = os.path.dirname(path), os.path.basename(path)[:-3]
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as e:
        raise ProgramError(f"{os.path.basename(path)} does not compile: {e}") from None
    if os.path.abspath(getattr(module, "__file__", "")) != path:
        raise ProgramError(f"another module named {module_name!r} shadows {path}: rename the file")
    names = [name] if name else [n for n in DEFAULT_FUNCTIONS if callable(getattr(module, n, None))][:1]
    if not names or not callable(getattr(module, names[0], None)):
        wanted = name or " or ".join(DEFAULT_FUNCTIONS)
        raise ProgramError(f"{os.path.basename(path)} has no function {wanted}(k): write one that starts the "
                           "threads, joins them and raises AssertionError when its invariant breaks")
    options = dict(getattr(module, "KERNEL", {}) or {})
    return getattr(module, names[0]), options, f"{path}:{names[0]}"
