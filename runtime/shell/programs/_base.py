"""Shared plumbing for the vos shell built-in programs.

Every built-in program has the signature::

    prog(argv, stdin, stdout, stderr, cwd) -> int

where ``stdin`` is a *Reader* (``read(n=-1) -> bytes``, ``b""`` at end of
stream) and ``stdout``/``stderr`` are *Writers* (``write(data: bytes)``,
optional ``flush()``).  This module provides what all programs share:

* :func:`program` -- decorator that turns ``fn(ctx, opts, args) -> int`` into
  a program with the signature above: it parses options with a small
  GNU-getopt-like parser and reports usage errors exactly like GNU does;
* :class:`Ctx` -- per-invocation context: batched stdout, GNU-style
  diagnostics on stderr, input files resolved relative to ``cwd``;
* :func:`iter_blocks` / :func:`iter_lines` / :func:`iter_chunks` --
  bounded-memory readers; :func:`copy_stream` -- a raw copy, zero-copy into
  a bounded buffer where the ends allow it;
* :func:`quote` / :func:`quotef` -- GNU ``quoteaf``/``quotef``-style quoting
  of file names in diagnostics.

``BrokenPipeError`` raised by a writer is never caught: it propagates to the
runner, which treats it like SIGPIPE.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator

CHUNK = 65536          # preferred size of writes to stdout
READ_CHUNK = 262144    # preferred size of reads from inputs


# ---------------------------------------------------------------- streams

def iter_blocks(reader, chunk: int = READ_CHUNK) -> Iterator[bytes]:
    """Yield blocks of whole lines read from *reader*.

    Each block ends with ``b"\\n"`` except possibly the last one (an
    unterminated final line).  Memory use is bounded by about one *chunk*
    plus the longest line.
    """
    pending: list[bytes] = []
    while True:
        data = reader.read(chunk)
        if not data:
            break
        cut = data.rfind(b"\n") + 1
        if not cut:
            pending.append(data)
            continue
        if pending:
            pending.append(data[:cut])
            block = b"".join(pending)
            pending = []
        else:
            block = data if cut == len(data) else data[:cut]
        if cut < len(data):
            pending.append(data[cut:])
        yield block
    if pending:
        yield b"".join(pending)


def iter_lines(reader, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield the lines of *reader* (each ending in ``b"\\n"`` except maybe
    the last), reading *chunk* bytes at a time."""
    for block in iter_blocks(reader, chunk):
        lines = block.split(b"\n")
        last = lines.pop()
        for line in lines:
            yield line + b"\n"
        if last:
            yield last


def iter_chunks(reader, chunk: int = READ_CHUNK, views: bool = False) -> Iterator[bytes]:
    """Yield raw chunks of *reader* until end of stream.  views=True: where
    the reader is a bounded buffer's end, the chunks are read-only
    memoryviews into the buffer (no copy), each valid until the next one is
    asked for; elsewhere bytes."""
    read_view = getattr(reader, "read_view", None) if views else None
    if read_view is not None:
        while data := read_view():
            yield data
        return
    while data := reader.read(chunk):
        yield data


def copy_stream(reader, ctx, chunk: int = READ_CHUNK) -> None:
    """Copy *reader* raw to the program's stdout with as few copies as the two
    ends allow: when stdout is a bounded buffer's writing end and the reader
    is a file (readinto), each chunk is read straight into the buffer -- the
    one copy the read itself makes (the shared-memory pipe's advantage over
    a kernel pipe, which copies in and out again)."""
    send_into = getattr(ctx.stdout, "send_into", None)
    readinto = getattr(reader, "readinto", None)
    if send_into is None or readinto is None:
        for data in iter_chunks(reader, chunk):
            ctx.out.write(data)
            ctx.out.flush_buffer()
        return
    ctx.out.flush_buffer()
    while send_into(chunk, readinto):
        pass


class Output:
    """Batches small writes into chunks of about :data:`CHUNK` bytes."""

    def __init__(self, writer, limit: int = CHUNK):
        self._writer = writer
        self._limit = limit
        self._buf = bytearray()

    def write(self, data) -> None:
        if not self._buf and len(data) >= self._limit:
            self._writer.write(bytes(data))
            return
        self._buf += data
        if len(self._buf) >= self._limit:
            self.flush_buffer()

    def flush_buffer(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            self._writer.write(data)

    def flush(self) -> None:
        self.flush_buffer()
        flush = getattr(self._writer, "flush", None)
        if flush is not None:
            flush()


# ---------------------------------------------------------------- quoting

_SAFE_NAME = re.compile(r"[A-Za-z0-9_@%+=:,./-]+\Z")


def quote(name: str) -> str:
    """Quote *name* like GNU ``quoteaf`` (shell-escape-always style)."""
    if "'" in name and not re.search(r'["$`\\!]', name):
        return '"' + name + '"'
    return "'" + name.replace("'", "'\\''") + "'"


def quotef(name: str) -> str:
    """Quote *name* like GNU ``quotef``: only when it needs quoting."""
    return name if _SAFE_NAME.match(name) else quote(name)


def strerror(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


# ---------------------------------------------------------------- options

class UsageError(Exception):
    """A command-line error; *message* is printed before the 'Try' hint."""

    def __init__(self, message: str | None):
        super().__init__(message)
        self.message = message


class Opts:
    """Parsed options: an ordered list of ``(key, value)`` pairs."""

    def __init__(self):
        self.items: list[tuple[str, str | None]] = []

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _ in self.items)

    def get(self, key: str, default=None):
        """Value of the last occurrence of *key* (GNU: last one wins)."""
        for k, v in reversed(self.items):
            if k == key:
                return v
        return default

    def all(self, key: str) -> list:
        return [v for k, v in self.items if k == key]


def _parse_long(arg, argv, i, longopts):
    """Parse the long option ``argv[i]``; return (key, value, next index)."""
    name, eq, value = arg[2:].partition("=")
    if name in longopts:
        matches = [name]
    else:
        matches = sorted(n for n in longopts if n.startswith(name))
        keys = {longopts[n] for n in matches}
        if len(keys) > 1:
            alts = " ".join(f"'--{n}'" for n in matches)
            raise UsageError(f"option '--{name}' is ambiguous; possibilities: {alts}")
        if not matches:
            raise UsageError(f"unrecognized option '{arg}'")
    full = matches[0]
    key, has_arg = longopts[full]
    if has_arg == "optional":
        return key, value if eq else None, i + 1
    if not has_arg:
        if eq:
            raise UsageError(f"option '--{full}' doesn't allow an argument")
        return key, None, i + 1
    if eq:
        return key, value, i + 1
    if i + 1 >= len(argv):
        raise UsageError(f"option '--{full}' requires an argument")
    return key, argv[i + 1], i + 2


def parse_options(argv, shortopts: str, longopts=None, permute: bool = True,
                  is_operand: Callable[[str], bool] | None = None):
    """A small GNU ``getopt_long``.

    *shortopts* uses getopt syntax (``"an:"``); *longopts* maps long names to
    ``(key, has_arg)`` where *has_arg* is False, True or ``"optional"``.  Combined flags (``-la``), attached or separate values
    (``-n5``/``-n 5``), ``--`` and permutation of operands are supported.
    *is_operand* lets a program claim option-looking operands (e.g. ``-5``
    for seq).  Returns ``(Opts, operands)``; raises :class:`UsageError`.
    """
    longopts = longopts or {}
    takes_arg = {c: shortopts[k + 1:k + 2] == ":" for k, c in enumerate(shortopts) if c != ":"}
    opts, operands = Opts(), []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            operands.extend(argv[i + 1:])
            break
        if not arg.startswith("-") or arg == "-" or (is_operand and is_operand(arg)):
            if not permute:
                operands.extend(argv[i:])
                break
            operands.append(arg)
            i += 1
            continue
        if arg.startswith("--"):
            key, value, i = _parse_long(arg, argv, i, longopts)
            opts.items.append((key, value))
            continue
        i += 1
        for pos in range(1, len(arg)):
            c = arg[pos]
            if c not in takes_arg:
                raise UsageError(f"invalid option -- '{c}'")
            if not takes_arg[c]:
                opts.items.append((c, None))
                continue
            if pos + 1 < len(arg):
                opts.items.append((c, arg[pos + 1:]))
            elif i < len(argv):
                opts.items.append((c, argv[i]))
                i += 1
            else:
                raise UsageError(f"option requires an argument -- '{c}'")
            break
    return opts, operands


# ---------------------------------------------------------------- context

class Ctx:
    """Per-invocation state of a running program."""

    def __init__(self, name: str, stdin, stdout, stderr, cwd: str):
        self.name = name
        self.stdin = stdin
        self.stdout = stdout
        self.out = Output(stdout)
        self.stderr = stderr
        self.cwd = cwd

    def path(self, name: str) -> str:
        return os.path.join(self.cwd, name)

    def error(self, message: str) -> None:
        """Write ``prog: message`` to stderr (flushing stdout first, as GNU
        ``error()`` does, so that interleaving matches with ``2>&1``)."""
        self.out.flush_buffer()
        self.stderr.write(os.fsencode(f"{self.name}: {message}\n"))

    def file_error(self, name: str, exc: OSError, fmt: str = "{}: {}") -> None:
        self.error(fmt.format(name, strerror(exc)))

    def open_input(self, name: str):
        """Open *name* for reading (``-`` is stdin).

        Raises OSError if the file cannot be opened.  The returned reader is
        a context manager whose ``read`` raises :class:`InputError` on read
        errors (a directory opens fine but fails to read, as in C).
        """
        if name == "-":
            return _StdinReader(self.stdin)
        try:
            return _FileReader(open(self.path(name), "rb", buffering=0))
        except IsADirectoryError as exc:
            return _FailingReader(exc)

    def for_each_input(self, names, handle, open_msg="{qf}: {err}",
                       read_msg="{qf}: {err}") -> int:
        """Call ``handle(name, reader)`` for each input name; report open and
        read errors with the given formats (``{name}``, ``{q}``: quoted,
        ``{qf}``: quoted if needed, ``{err}``: strerror).  Returns 1 if any
        error happened, else 0."""
        status = 0
        for name in names:
            try:
                reader = self.open_input(name)
            except OSError as exc:
                self.error(_format_msg(open_msg, name, exc))
                status = 1
                continue
            with reader:
                try:
                    handle(name, reader)
                except InputError as exc:
                    self.error(_format_msg(read_msg, name, exc.exc))
                    status = 1
        return status


def _format_msg(fmt: str, name: str, exc: OSError) -> str:
    return fmt.format(name=name, q=quote(name), qf=quotef(name), err=strerror(exc))


class InputError(Exception):
    """A read error on an input file (deliberately not an OSError, so that
    catching it can never swallow a BrokenPipeError from a writer)."""

    def __init__(self, exc: OSError):
        super().__init__(str(exc))
        self.exc = exc


class _StdinReader:
    def __init__(self, reader):
        self._reader = reader
        for zero_copy in ("read_view", "readinto"):      # what the end offers (iter_chunks, copy_stream),
            method = getattr(reader, zero_copy, None)     # unless this class wraps it (InputError)
            if method is not None and not hasattr(type(self), zero_copy):
                setattr(self, zero_copy, method)

    def read(self, n: int = -1) -> bytes:
        return self._reader.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class _FileReader(_StdinReader):
    def read(self, n: int = -1) -> bytes:
        try:
            return self._reader.read(n)
        except OSError as exc:
            raise InputError(exc) from exc

    def readinto(self, view) -> int:
        try:
            return self._reader.readinto(view)
        except OSError as exc:
            raise InputError(exc) from exc

    def __exit__(self, *exc_info):
        self._reader.close()
        return False


class _FailingReader(_StdinReader):
    def __init__(self, exc: OSError):
        super().__init__(None)
        self._exc = exc

    def read(self, n: int = -1) -> bytes:
        raise InputError(self._exc)


def program(name: str, shortopts: str = "", longopts=None, *, status: int = 1,
            usage: str | None = None, help: str = "", permute: bool = True,
            is_operand=None):
    """Decorator: wrap ``fn(ctx, opts, operands) -> int`` as a program.

    *status* is the exit status for usage errors; *usage* (grep) is an extra
    ``Usage:`` line GNU prints before the ``Try ... --help`` hint.
    """
    longopts = dict(longopts or {})
    longopts.setdefault("help", ("--help", False))
    synopsis = help or f"Usage: {name} [OPTION]... [FILE]...\n"

    def decorate(fn):
        @functools.wraps(fn)
        def run(argv, stdin, stdout, stderr, cwd) -> int:
            ctx = Ctx(argv[0] if argv else name, stdin, stdout, stderr, cwd)
            try:
                opts, operands = parse_options(argv, shortopts, longopts, permute, is_operand)
                if "--help" in opts:
                    ctx.out.write(synopsis.encode())
                    result = 0
                else:
                    result = fn(ctx, opts, operands)
            except UsageError as exc:
                if exc.message is not None:
                    ctx.error(exc.message)
                hint = usage.replace("PROG", ctx.name) if usage else ""
                ctx.stderr.write(os.fsencode(
                    f"{hint}Try '{ctx.name} --help' for more information.\n"))
                result = status
            ctx.out.flush()
            return result
        run.program_name = name
        return run
    return decorate


def parse_count(text: str, what: str) -> int:
    """Parse a non-negative decimal count or raise ValueError."""
    if not text.isdigit() or not text.isascii():
        raise ValueError(what)
    return int(text)
