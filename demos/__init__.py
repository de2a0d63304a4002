"""The demos: the lecture's ideas, run for real.

Each module is one demo, named like its command (`vos demo broken-acquire`
runs demos/broken_acquire.py) and has

    TITLE = "..."            one line, in the lecture's words
    SLIDE = "..."            the slide or idea it illustrates
    ORDER = 10               its place in `vos tour` (lecture order)
    def main(console, quick=False) -> None

A demo narrates in numbered steps, tells the student what to notice, and
finishes in seconds (`quick=True`, used by the smoke tests, makes it shorter).
"""

import importlib
import pkgutil


def all_demos():
    """[(command name, module)] in tour order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "main"):
            found.append((info.name.replace("_", "-"), mod))
    return sorted(found, key=lambda nm: (getattr(nm[1], "ORDER", 99), nm[0]))


def get(name):
    """The demo module for a command name; KeyError with the choices if unknown."""
    for n, mod in all_demos():
        if n == name:
            return mod
    raise KeyError(name)
