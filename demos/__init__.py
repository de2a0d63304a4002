"""The demos: the lecture's ideas, run for real.

Each module is one demo, named like its command (`vos demo broken-acquire`
runs demos/broken_acquire.py) and has

    TITLE = "..."            one line, in the lecture's words
    SLIDE = "..."            the slide or idea it illustrates
    ORDER = 10               its place in `vos tour` (lecture order)
    def main(console, quick=False) -> None

A demo narrates in numbered steps, tells the student what to notice, and
finishes in seconds (`quick=True`, used by the smoke tests, makes it shorter).
A race demo's main also takes `seed=SEED`: its last act, a controlled run
(demos/_controlled.py), prints the same thing for the same seed, every time
(`vos demo counter --seed 3`).
"""

import importlib
import inspect
import pkgutil

SEED = 1        # the seed of the demos' controlled acts when none is given


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


def run(mod, console, quick=False, seed=None):
    """Run one demo: main(console, quick=...), with seed=... when its main
    takes a seed and one is given (else the demo's own default)."""
    options = {"quick": quick}
    if seed is not None and "seed" in inspect.signature(mod.main).parameters:
        options["seed"] = seed
    mod.main(console, **options)
