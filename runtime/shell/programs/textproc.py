"""Line/byte counting and slicing built-ins: head, tail, wc, uniq.

All of them stream except ``tail`` (which keeps only the last blocks it
needs) and ``head -n -N``/``-c -N`` (which must see the end of the input).
Behaviour and output formats follow GNU coreutils 9.1.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque

from ._base import (InputError, UsageError, iter_blocks, iter_chunks, iter_lines,
                    program, quote, quotef, strerror)


# ---------------------------------------------------------------- helpers

def _shorthand(argv, signs: str):
    """Rewrite the obsolete first-argument form ``-N`` (``+N`` for tail)
    into ``-n ±N``."""
    if len(argv) > 1 and re.fullmatch(r"[%s]\d+" % re.escape(signs), argv[1]):
        sign = "" if argv[1][0] == "-" else "+"
        return [argv[0], "-n", sign + argv[1][1:]] + argv[2:]
    return argv


def _count_arg(ctx, opts, signs: str):
    """Return (mode, sign, count) from -n/-c, or None after an error.

    *mode* is "c" (bytes) or "n" (lines); *sign* is "", "-" or "+"."""
    mode, text = "n", "10"
    for key, value in opts.items:
        if key in "nc":
            mode, text = key, value
    sign = text[0] if text[:1] and text[0] in signs else ""
    digits = text[1:] if sign else text
    what = "bytes" if mode == "c" else "lines"
    if not (digits.isascii() and digits.isdigit()):
        ctx.error(f"invalid number of {what}: {quote(text if sign == '+' else digits)}")
        return None
    return mode, sign, int(digits)


class _Headers:
    """Prints ``==> name <==`` headers between files like head/tail."""

    def __init__(self, ctx, opts, nfiles: int):
        self.ctx = ctx
        self.enabled = "v" in opts or (nfiles > 1 and "q" not in opts)
        self.first = True

    def __call__(self, name: str) -> None:
        if self.enabled:
            shown = "standard input" if name == "-" else name
            sep = "" if self.first else "\n"
            self.ctx.out.write(os.fsencode(f"{sep}==> {shown} <==\n"))
            self.first = False


def _start_of_last_lines(data: bytes, n: int) -> int:
    """Offset in *data* where its last *n* lines start (n >= 1)."""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    start = 0
    for _ in range(n):
        p = data.rfind(b"\n", 0, end)
        if p < 0:
            return 0
        start, end = p + 1, p
    return start


def _nth_newline_end(chunk: bytes, n: int) -> int:
    """Offset just after the *n*-th newline of *chunk* (which has >= n)."""
    pos = -1
    for _ in range(n):
        pos = chunk.index(b"\n", pos + 1)
    return pos + 1


HEAD_TAIL_LONG = {"lines": ("n", True), "bytes": ("c", True), "quiet": ("q", False),
                  "silent": ("q", False), "verbose": ("v", False)}


# ---------------------------------------------------------------- head

def _head_lines(reader, n: int, out) -> None:
    if n == 0:
        return
    for chunk in iter_chunks(reader):
        count = chunk.count(b"\n")
        if count < n:
            out.write(chunk)
            n -= count
            continue
        out.write(chunk[:_nth_newline_end(chunk, n)])
        return


def _head_bytes(reader, n: int, out) -> None:
    while n > 0:
        chunk = reader.read(min(n, 1 << 18))
        if not chunk:
            return
        out.write(chunk)
        n -= len(chunk)


def _head_elide(reader, mode: str, n: int, out) -> None:
    """All but the last *n* lines/bytes (needs the whole input)."""
    data = b"".join(iter_chunks(reader))
    if n == 0:
        out.write(data)
    elif mode == "c":
        out.write(data[:max(0, len(data) - n)])
    else:
        out.write(data[:_start_of_last_lines(data, n)])


def _head(argv, stdin, stdout, stderr, cwd):
    return _head_program(_shorthand(argv, "-"), stdin, stdout, stderr, cwd)


@program("head", "n:c:qv", HEAD_TAIL_LONG)
def _head_program(ctx, opts, args) -> int:
    """Print the first 10 (-n N) lines or -c N bytes of each file."""
    parsed = _count_arg(ctx, opts, "-")
    if parsed is None:
        return 1
    mode, sign, n = parsed
    files = args or ["-"]
    header = _Headers(ctx, opts, len(files))

    def handle(name, reader):
        header(name)
        if sign == "-":
            _head_elide(reader, mode, n, ctx.out)
        elif mode == "c":
            _head_bytes(reader, n, ctx.out)
        else:
            _head_lines(reader, n, ctx.out)

    return ctx.for_each_input(files, handle, "cannot open {q} for reading: {err}",
                              "error reading {q}: {err}")


head = _head
head.__doc__ = _head_program.__doc__


# ---------------------------------------------------------------- tail

def _tail_lines(reader, n: int, out) -> None:
    """Last *n* lines, keeping only the blocks that may contain them."""
    if n == 0:
        for _ in iter_chunks(reader):
            pass
        return
    blocks: deque = deque()   # (block, newline count)
    later = 0                 # newlines in all blocks but the first
    for block in iter_blocks(reader):
        count = block.count(b"\n")
        if blocks:
            later += count
        blocks.append((block, count))
        while later > n:      # the last n lines lie within blocks[1:]
            blocks.popleft()
            later -= blocks[0][1]
    data = b"".join(block for block, _ in blocks)
    out.write(data[_start_of_last_lines(data, n):])


def _tail_bytes(reader, n: int, out) -> None:
    chunks: deque = deque()
    total = 0
    for chunk in iter_chunks(reader):
        chunks.append(chunk)
        total += len(chunk)
        while total - len(chunks[0]) >= n and len(chunks) > 1:
            total -= len(chunks.popleft())
    data = b"".join(chunks)
    out.write(data[max(0, len(data) - n):] if n else b"")


def _tail_from(reader, mode: str, n: int, out) -> None:
    """Everything from line/byte *n* (1-based) on."""
    skip = max(n - 1, 0)
    for chunk in iter_chunks(reader):
        if skip:
            if mode == "c":
                cut = min(skip, len(chunk))
                skip -= cut
            else:
                count = chunk.count(b"\n")
                if count < skip:
                    skip -= count
                    continue
                cut = _nth_newline_end(chunk, skip)
                skip = 0
            chunk = chunk[cut:]
        out.write(chunk)


def _tail(argv, stdin, stdout, stderr, cwd):
    return _tail_program(_shorthand(argv, "-+"), stdin, stdout, stderr, cwd)


@program("tail", "n:c:qv", HEAD_TAIL_LONG)
def _tail_program(ctx, opts, args) -> int:
    """Print the last 10 (-n N) lines, or from line +N, of each file."""
    parsed = _count_arg(ctx, opts, "-+")
    if parsed is None:
        return 1
    mode, sign, n = parsed
    files = args or ["-"]
    header = _Headers(ctx, opts, len(files))

    def handle(name, reader):
        header(name)
        if sign == "+":
            _tail_from(reader, mode, n, ctx.out)
        elif mode == "c":
            _tail_bytes(reader, n, ctx.out)
        else:
            _tail_lines(reader, n, ctx.out)

    return ctx.for_each_input(files, handle, "cannot open {q} for reading: {err}",
                              "error reading {q}: {err}")


tail = _tail
tail.__doc__ = _tail_program.__doc__


# ---------------------------------------------------------------- wc

def _word_table() -> bytes:
    """Translation for word counting in the C locale: blanks -> b' ',
    printable non-blanks -> b'a'; other bytes are deleted (GNU wc neither
    starts nor ends a word on non-printable bytes)."""
    table = bytearray(256)
    for b in range(256):
        table[b] = 0x20 if b in b" \t\n\v\f\r" else 0x61
    return bytes(table)


_WORD_TABLE = _word_table()
_WORD_NEUTRAL = bytes(b for b in range(256) if not (0x20 < b < 0x7F) and b not in b" \t\n\v\f\r")


class _Counts:
    """Line, word and byte counters fed with raw chunks."""

    def __init__(self, fields: str):
        self.lines = self.words = self.bytes = 0
        self.want_lines, self.want_words = "l" in fields, "w" in fields
        self.in_word = False

    def feed(self, chunk) -> None:
        """Count a chunk: bytes, or a memoryview (bytes alone need no copy)."""
        self.bytes += len(chunk)
        if not (self.want_lines or self.want_words):
            return
        if type(chunk) is memoryview:
            chunk = chunk.tobytes()
        self.lines += chunk.count(b"\n")
        if self.want_words:
            t = chunk.translate(_WORD_TABLE, _WORD_NEUTRAL)
            if t:
                self.words += t.count(b" a") + (t[0] == 0x61 and not self.in_word)
                self.in_word = t[-1] == 0x61

    def values(self, fields: str) -> list[int]:
        table = {"l": self.lines, "w": self.words, "m": self.bytes, "c": self.bytes}
        return [table[f] for f in fields]


def _wc_width(ctx, files, nfields: int) -> int:
    """Column width exactly as GNU wc's compute_number_width()."""
    if len(files) == 1 and nfields == 1:
        return 1
    total, minimum = 0, 1
    for name in files:
        if name == "-":
            minimum = 7  # stdin is a pipe-like stream, never a regular file
            continue
        try:
            st = os.stat(ctx.path(name))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
        else:
            minimum = 7
    return max(len(str(total)), minimum)


@program("wc", "clwm", {"bytes": ("c", False), "chars": ("m", False),
                        "lines": ("l", False), "words": ("w", False)})
def wc(ctx, opts, args) -> int:
    """Print newline, word and byte counts (C locale: -m counts bytes)."""
    fields = "".join(f for f in "lwmc" if f in opts) or "lwc"
    files = args or ["-"]
    width = _wc_width(ctx, files, len(fields))
    totals, status, counted = [0] * len(fields), 0, 0

    def report(values, label):
        line = " ".join("%*d" % (width, v) for v in values)
        ctx.out.write(os.fsencode(line + (" " + label if label is not None else "") + "\n"))

    for name in files:
        try:
            reader = ctx.open_input(name)
        except OSError as exc:
            ctx.error(f"{quotef(name)}: {strerror(exc)}")
            status = 1
            continue
        counts = _Counts(fields)
        with reader:
            try:
                for chunk in iter_chunks(reader, 1 << 20, views=True):
                    counts.feed(chunk)
            except InputError as exc:
                ctx.error(f"{quotef(name)}: {strerror(exc.exc)}")
                status = 1
        values = counts.values(fields)
        totals = [a + b for a, b in zip(totals, values)]
        counted += 1
        report(values, name if args else None)
    if len(files) > 1:
        report(totals, "total")
    return status


# ---------------------------------------------------------------- uniq

@program("uniq", "cdui", {"count": ("c", False), "repeated": ("d", False),
                          "unique": ("u", False), "ignore-case": ("i", False)},
         help="Usage: uniq [OPTION]... [INPUT [OUTPUT]]\n")
def uniq(ctx, opts, args) -> int:
    """Filter adjacent matching lines (-c count, -d only repeated,
    -u only unique, -i ignore case)."""
    if len(args) > 2:
        raise UsageError(f"extra operand {quote(args[2])}")
    name = args[0] if args else "-"
    try:
        reader = ctx.open_input(name)
    except OSError as exc:
        ctx.error(f"{quotef(name)}: {strerror(exc)}")
        return 1
    out_file = None
    if len(args) == 2 and args[1] != "-":
        try:
            out_file = open(ctx.path(args[1]), "wb")
        except OSError as exc:
            ctx.error(f"{quotef(args[1])}: {strerror(exc)}")
            return 1
    out = out_file or ctx.out
    show_repeated, show_unique = "u" not in opts, "d" not in opts
    counting, fold = "c" in opts, "i" in opts

    def emit(line, count):
        if (count > 1 and show_repeated) or (count == 1 and show_unique):
            if not line.endswith(b"\n"):
                line += b"\n"
            out.write(b"%7d %s" % (count, line) if counting else line)

    status = 0
    with reader:
        try:
            group, key, count = None, None, 0
            for line in iter_lines(reader):
                this = line.rstrip(b"\n")
                if fold:
                    this = this.lower()
                if count and this == key:
                    count += 1
                    continue
                if count:
                    emit(group, count)
                group, key, count = line, this, 1
            if count:
                emit(group, count)
        except InputError:
            ctx.error(f"error reading {quote(name)}")
            status = 1
        finally:
            if out_file:
                out_file.close()
    return status
