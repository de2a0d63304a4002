"""`vos bench startup`: what `vos sh -c LINE` costs from the command line.

A shell's command line starts an interpreter, imports vos, boots a kernel
for the one line (session.one_shot), runs it, shuts the kernel down and
ends.  Measured here as a user runs it, a new process each time, against:

  * `python -c pass`: the interpreter's own start and end, the floor of any
    Python command;
  * `python -c "import runtime.cli.sh"`: the interpreter and the imports of
    the `vos sh` path, nothing run (what imports cost);
  * `sh -c true` and `sh -c LINE`: the real shell with coreutils.

Every process is started the same way (subprocess, output to /dev/null);
the ways take turns, so that the host's drift hits all alike.  The wall
time is reported, and in the note the child's CPU time (user + system,
from wait4), which the load of a shared host disturbs less.

Bytecode: each command runs once first with PYTHONDONTWRITEBYTECODE unset,
so that the `__pycache__` files exist, as they do in any installed copy;
without them every module is compiled from source at every start.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from .harness import Row, median, table

TITLE = "vos sh -c from the command line vs python -c pass and sh -c (interpreter, imports)"
LINE = "ls -la listing | grep cse"


def vos_command():
    """How a user runs vos: the `vos` script beside this interpreter, or `python -m runtime`."""
    script = os.path.join(os.path.dirname(sys.executable), "vos")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "runtime"]


def _env():
    env = {**os.environ, "LC_ALL": "C"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(cmd, cwd, env):
    """Wall seconds and the child's CPU seconds of one run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed: status {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main(console, quick=False, runs=5):
    runs = max(runs, 3 if quick else 21)         # ~0.1 s each: many runs are cheap, and the host is noisy
    vos = vos_command()
    sh = shutil.which("sh") or "/bin/sh"
    ways = {
        "vos sh -c true": vos + ["sh", "-c", "true"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "imports": [sys.executable, "-c", "import os, runtime.cli.sh; os._exit(0)"],
        "sh -c true": [sh, "-c", "true"],
        "vos sh -c LINE": vos + ["sh", "-c", LINE],
        "sh -c LINE": [sh, "-c", LINE],
    }
    env = _env()
    with tempfile.TemporaryDirectory(prefix="vos-bench-startup-") as d:
        os.mkdir(os.path.join(d, "listing"))
        for i in range(60):
            open(os.path.join(d, "listing", f"{'cse' if i % 4 == 0 else 'ee'}{100 + i}.txt"), "w").close()
        for cmd in ways.values():                # writes the bytecode caches (see the module doc)
            _run(cmd, d, env)
        wall = {w: [] for w in ways}
        cpu = {w: [] for w in ways}
        for _ in range(runs):
            for w, cmd in ways.items():
                t, c = _run(cmd, d, env)
                wall[w].append(t)
                cpu[w].append(c)
    t = {w: median(v) for w, v in wall.items()}
    c = {w: median(v) * 1e3 for w, v in cpu.items()}

    def note(a, b):
        return f"CPU {c[a]:.1f} ms vs {c[b]:.1f} ms"

    rows = [
        Row("vos sh -c true", "s", t["vos sh -c true"], "python -c pass", t["python -c pass"],
            higher_is_better=False, note=note("vos sh -c true", "python -c pass")),
        Row("vos sh -c true", "s", t["vos sh -c true"], "sh -c true", t["sh -c true"],
            higher_is_better=False, note=note("vos sh -c true", "sh -c true")),
        Row("python -c 'import runtime.cli.sh' (os._exit)", "s", t["imports"], "python -c pass", t["python -c pass"],
            higher_is_better=False, note="the imports alone: " + note("imports", "python -c pass")),
        Row(f"vos sh -c '{LINE}'", "s", t["vos sh -c LINE"], f"sh -c '{LINE}'", t["sh -c LINE"],
            higher_is_better=False, note=note("vos sh -c LINE", "sh -c LINE")),
    ]
    return table(console, "vos bench startup", rows, runs)
