"""Built-in programs of the vos shell.

Each program is a pure function of its arguments and streams::

    prog(argv: list[str], stdin: Reader, stdout: Writer, stderr: Writer,
         cwd: str) -> int

``argv[0]`` is the program name; the return value is the exit status.  A
*Reader* has ``read(n=-1) -> bytes`` (``b""`` at end of stream); a *Writer*
has ``write(data: bytes)`` and optionally ``flush()``.  A writer may raise
``BrokenPipeError`` when its reader has gone away: programs let it
propagate (the runner treats it like SIGPIPE).  Output is batched into
chunks of about 64 KiB; streaming programs never hold more than about one
chunk (plus the longest line) in memory.

Output, diagnostics and exit statuses match GNU coreutils 9.1 and GNU grep
3.8 run with ``LC_ALL=C`` and stdout a pipe (so ``ls`` prints one name per
line and sorts names in byte order).  :data:`PROGRAMS` is the registry.

Known differences from GNU (by design or not yet supported):

* only the options listed in each program's docstring exist; others are
  reported as invalid options (e.g. grep -r/-o/-A, sort -c/-h/-g, ls -C/-i,
  wc -L, uniq -f/-s, tr -t, seq -f and exponent operands);
* ``--help`` prints a one-line synopsis, not GNU's full help text;
* stdin is never a regular file, so ``wc`` pads its columns to width 7 as
  GNU does for pipes; C-locale semantics only (no multibyte characters);
* ``ls -l`` shows no ACL/SELinux marker after the mode string;
* grep decides "binary" per block read (256 KiB) rather than per GNU
  buffer, which only matters for NULs deep inside large files.
"""

from __future__ import annotations

from collections.abc import Callable

from ._base import iter_blocks, iter_lines
from .grep import grep
from .ls import ls
from .simple import cat, echo, false, seq, tee, true, yes
from .sort import sort
from .textproc import head, tail, uniq, wc
from .transform import cut, tr

Program = Callable[..., int]

PROGRAMS: dict[str, Program] = {
    "cat": cat,
    "cut": cut,
    "echo": echo,
    "false": false,
    "grep": grep,
    "head": head,
    "ls": ls,
    "seq": seq,
    "sort": sort,
    "tail": tail,
    "tee": tee,
    "tr": tr,
    "true": true,
    "uniq": uniq,
    "wc": wc,
    "yes": yes,
}

__all__ = ["PROGRAMS", "Program", "iter_blocks", "iter_lines"]
