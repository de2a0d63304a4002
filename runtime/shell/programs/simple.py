"""Simple built-ins: true, false, echo, yes, cat, tee, seq (GNU coreutils 9.1)."""

from __future__ import annotations

import re
from decimal import Decimal

from ._base import CHUNK, UsageError, copy_stream, iter_chunks, iter_lines, program, quotef


def true(argv, stdin, stdout, stderr, cwd) -> int:
    """Do nothing, successfully (arguments are ignored, as in GNU)."""
    return 0


def false(argv, stdin, stdout, stderr, cwd) -> int:
    """Do nothing, unsuccessfully."""
    return 1


# ---------------------------------------------------------------- echo

_ECHO_SIMPLE = {"a": 7, "b": 8, "e": 27, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
_ECHO_ESCAPE = re.compile(rb"\\(?:([abefnrtv\\])|x([0-9A-Fa-f]{1,2})|0([0-7]{0,3})|([1-7][0-7]{0,2})|(c))")


def _echo_unescape(arg: bytes) -> tuple[bytes, bool]:
    """Interpret ``echo -e`` escapes; return (bytes, stop) where *stop* is
    True after ``\\c``."""
    out, pos = bytearray(), 0
    for m in _ECHO_ESCAPE.finditer(arg):
        out += arg[pos:m.start()]
        pos = m.end()
        simple, hexa, oct0, octal, stop = m.groups()
        if stop:
            return bytes(out), True
        if simple:
            out.append(_ECHO_SIMPLE[simple.decode()])
        elif hexa:
            out.append(int(hexa, 16))
        else:
            out.append(int(oct0 or octal or b"0", 8) & 0xFF)
    out += arg[pos:]
    return bytes(out), False


def echo(argv, stdin, stdout, stderr, cwd) -> int:
    """GNU echo: leading arguments made only of ``-[neE]+`` are options."""
    args = [a.encode("utf-8", "surrogateescape") for a in argv[1:]]
    newline, escapes = True, False
    while args and re.fullmatch(rb"-[neE]+", args[0]):
        for flag in args.pop(0)[1:]:
            if flag == ord("n"):
                newline = False
            else:
                escapes = flag == ord("e")
    out = bytearray()
    for k, arg in enumerate(args):
        if k:
            out += b" "
        if escapes:
            arg, stop = _echo_unescape(arg)
            if stop:
                out += arg
                stdout.write(bytes(out))
                return 0
        out += arg
    if newline:
        out += b"\n"
    stdout.write(bytes(out))
    return 0


# ---------------------------------------------------------------- yes

@program("yes", "", permute=False, help="Usage: yes [STRING]...\n")
def yes(ctx, opts, args) -> int:
    """Repeat a line forever; ends only when the writer raises
    BrokenPipeError (which propagates to the runner)."""
    line = (" ".join(args) if args else "y").encode("utf-8", "surrogateescape") + b"\n"
    block = line * max(1, CHUNK // len(line))
    ctx.out.flush_buffer()
    write = ctx.out.write
    while True:
        write(block)


# ---------------------------------------------------------------- cat

def _caret(b: int) -> bytes:
    """GNU cat -v notation of one byte (^X, M-x, M-^X)."""
    prefix = b"M-" if b >= 128 else b""
    b &= 0x7F
    if b == 127:
        return prefix + b"^?"
    return prefix + (b"^" + bytes((b + 64,)) if b < 32 else bytes((b,)))


_CARET = [_caret(b) for b in range(256)]
_NONPRINTING = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f-\xff]")


class _CatFormatter:
    """Line-oriented cat options (-n -b -s -E -T -v), state kept across
    files."""

    def __init__(self, opts):
        keys = {k for k, _ in opts.items}
        keys |= {"v", "E", "T"} if "A" in keys else set()
        keys |= {"v", "E"} if "e" in keys else set()
        keys |= {"v", "T"} if "t" in keys else set()
        self.number_all = "n" in keys and "b" not in keys
        self.number_nonblank = "b" in keys
        self.squeeze = "s" in keys
        self.ends = "E" in keys
        self.tabs = "T" in keys
        self.visible = "v" in keys
        self.lineno = 0
        self.blanks = 0
        self.at_start = True

    def format(self, line: bytes) -> bytes:
        blank = line == b"\n" and self.at_start
        if blank:
            self.blanks += 1
            if self.squeeze and self.blanks > 1:
                return b""
        else:
            self.blanks = 0
        prefix = b""
        if self.at_start and (self.number_all or (self.number_nonblank and not blank)):
            self.lineno += 1
            prefix = b"%6d\t" % self.lineno
        ended = line.endswith(b"\n")
        if ended:
            line = line[:-1]
        if self.visible:
            line = _NONPRINTING.sub(lambda m: _CARET[m[0][0]], line)
        if self.tabs:
            line = line.replace(b"\t", b"^I")
        if ended:
            line += b"\n"
        if self.ends and line.endswith(b"\n"):
            line = line[:-1] + b"$\n"
        self.at_start = line.endswith(b"\n")
        return prefix + line


@program("cat", "AbeEnstTuv", {"show-all": ("A", False), "number-nonblank": ("b", False),
                                "show-ends": ("E", False), "number": ("n", False),
                                "squeeze-blank": ("s", False), "show-tabs": ("T", False),
                                "show-nonprinting": ("v", False)})
def cat(ctx, opts, args) -> int:
    """Concatenate files (``-`` is stdin) to stdout."""
    opts.items = [(k, v) for k, v in opts.items if k != "u"]  # -u: ignored, as GNU
    fmt = _CatFormatter(opts) if opts.items else None

    def copy(name, reader):
        if fmt is None:
            copy_stream(reader, ctx)
        else:
            for line in iter_lines(reader):
                ctx.out.write(fmt.format(line))

    return ctx.for_each_input(args or ["-"], copy)


# ---------------------------------------------------------------- tee

@program("tee", "ai", {"append": ("a", False), "ignore-interrupts": ("i", False)})
def tee(ctx, opts, args) -> int:
    """Copy stdin to stdout and to each FILE (``-a``: append)."""
    mode = "ab" if "a" in opts else "wb"
    files, status = [], 0
    try:
        for name in args:
            try:
                files.append(open(ctx.path(name), mode, buffering=0))
            except OSError as exc:
                ctx.file_error(quotef(name), exc)
                status = 1
        for chunk in iter_chunks(ctx.stdin, CHUNK):
            ctx.out.write(chunk)
            ctx.out.flush_buffer()
            for f in files:
                f.write(chunk)
    finally:
        for f in files:
            f.close()
    return status


# ---------------------------------------------------------------- seq

_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)\Z")


def _seq_operand(text: str) -> tuple[Decimal, int, int]:
    """Parse a seq operand: (value, precision, width)."""
    if not _NUMBER.match(text):
        raise UsageError(f"invalid floating point argument: '{text}'")
    frac = text.partition(".")[2]
    return Decimal(text), len(frac) if "." in text else 0, len(text.lstrip("+"))


def _seq_format(first, step, last, equal_width):
    """Return a function formatting a number like GNU seq's default format."""
    prec = max(first[1], step[1])
    width = 0
    if equal_width:
        first_width = first[2] + (prec - first[1]) + (1 if prec and not first[1] else 0)
        last_width = last[2] + (prec - last[1])
        if last[1] and not prec:
            last_width -= 1
        if prec and not last[1]:
            last_width += 1
        width = max(first_width, last_width)
    spec = f"0{width}.{prec}f" if width else f".{prec}f"
    if not prec and not width:
        return lambda value: b"%d" % value
    return lambda value: format(value, spec).encode()


def _looks_negative(arg: str) -> bool:
    return len(arg) > 1 and (arg[1].isdigit() or arg[1] == ".")


@program("seq", "s:w", {"separator": ("s", True), "equal-width": ("w", False)},
         permute=False, is_operand=_looks_negative,
         help="Usage: seq [OPTION]... [FIRST [INCREMENT]] LAST\n")
def seq(ctx, opts, args) -> int:
    """Print numbers from FIRST to LAST by INCREMENT (integers/decimals)."""
    if not args:
        raise UsageError("missing operand")
    if len(args) > 3:
        raise UsageError(f"extra operand '{args[3]}'")
    operands = [_seq_operand(a) for a in args]
    if len(operands) == 1:
        operands.insert(0, (Decimal(1), 0, 1))
    if len(operands) == 2:
        operands.insert(1, (Decimal(1), 0, 1))
    first, step, last = operands
    if step[0] == 0:
        raise UsageError(f"invalid Zero increment value: '{args[1]}'")
    fmt = _seq_format(first, step, last, "w" in opts)
    sep = opts.get("s", "\n").encode("utf-8", "surrogateescape")
    start, incr, end = first[0], step[0], last[0]
    if all("." not in a for a in args):
        start, incr, end = int(start), int(incr), int(end)
    emitted, count, batch = False, 0, []
    value = start
    while (value <= end) if incr > 0 else (value >= end):
        batch.append(fmt(value))
        count += 1
        value = start + count * incr
        if len(batch) >= 4096:
            ctx.out.write(sep * emitted + sep.join(batch))
            emitted, batch = True, []
    if batch:
        ctx.out.write(sep * emitted + sep.join(batch))
        emitted = True
    if emitted:
        ctx.out.write(b"\n")
    return 0
