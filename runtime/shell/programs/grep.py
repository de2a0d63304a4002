"""The grep built-in (GNU grep 3.8 semantics, C locale).

Supported: ``-E -F -G -i -y -v -c -n -l -L -q -s -w -x -h -H -m NUM
-e PATTERN -f FILE``.  Input is searched a block of whole lines at a time:
the translated pattern (see :mod:`.regex`) can never match a newline, so
one ``re.MULTILINE`` search over a block finds the next matching line, and
runs of non-matching lines (for ``-v``) are found in between.  Binary input
(a NUL byte in a block) is handled like GNU: NULs act as line ends, normal
output is suppressed and ``grep: NAME: binary file matches`` is reported.
"""

from __future__ import annotations

import os
import re
from itertools import filterfalse

from ._base import InputError, UsageError, iter_blocks, program
from .regex import RegexError, translate

LONG = {
    "extended-regexp": ("E", False), "fixed-strings": ("F", False),
    "basic-regexp": ("G", False), "ignore-case": ("i", False),
    "invert-match": ("v", False), "count": ("c", False),
    "line-number": ("n", False), "files-with-matches": ("l", False),
    "files-without-match": ("L", False), "quiet": ("q", False),
    "silent": ("q", False), "no-messages": ("s", False),
    "word-regexp": ("w", False), "line-regexp": ("x", False),
    "no-filename": ("h", False), "with-filename": ("H", False),
    "max-count": ("m", True), "regexp": ("e", True), "file": ("f", True),
    "color": ("color", "optional"), "colour": ("color", "optional"),
}
USAGE = "Usage: PROG [OPTION]... PATTERNS [FILE]...\n"
STDIN_LABEL = "(standard input)"


class _Fatal(Exception):
    """Error that ends grep with status 2 (message already formatted)."""


def _patterns(ctx, opts, args) -> list[bytes]:
    """Collect the pattern list from -e/-f or the first operand."""
    sources = [(k, v) for k, v in opts.items if k in "ef"]
    if not sources:
        if not args:
            raise UsageError(None)
        sources = [("e", args.pop(0))]
    patterns: list[bytes] = []
    for kind, value in sources:
        if kind == "e":
            patterns.extend(os.fsencode(value).split(b"\n"))
            continue
        try:
            with ctx.open_input(value) as f:
                data = b"".join(iter_blocks(f))
        except OSError as exc:
            raise _Fatal(f"{value}: {os.strerror(exc.errno)}")
        except InputError as exc:
            raise _Fatal(f"{value}: {os.strerror(exc.exc.errno)}")
        if data:
            patterns.extend(data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n"))
    return patterns


def compile_patterns(ctx, patterns: list[bytes], opts, line_mode: str | None):
    """Compile the patterns into a :class:`Matcher`;
    *line_mode* is "x" (whole lines), "w" (whole words) or None."""
    matchers = {k for k, _ in opts.items if k in "EFG"}
    if len(matchers) > 1:
        raise _Fatal("conflicting matchers specified")
    icase = "i" in opts or "y" in opts
    parts, groups = [], 0
    for pattern in patterns:
        if "F" in matchers:
            parts.append(re.escape(pattern))
            continue
        try:
            text, n = translate(pattern, "E" in matchers, icase, groups,
                                warn=lambda msg: ctx.error("warning: " + msg))
        except RegexError as exc:
            raise _Fatal(str(exc))
        parts.append(text)
        groups += n
    body = parts[0] if len(parts) == 1 else b"|".join(b"(?:" + p + b")" for p in parts)
    if line_mode == "x":
        body = b"^(?:" + body + b")$"
    elif line_mode == "w":
        body = rb"(?<!\w)(?:" + body + rb")(?!\w)"
    flags = re.MULTILINE | (re.IGNORECASE if icase else 0)
    try:
        return Matcher(re.compile(body, flags),
                       re.compile(b"(?:" + body + b")[^\n]*\n?", flags))
    except re.error:
        raise _Fatal("Invalid regular expression")
    except RecursionError:
        raise _Fatal("regular expression is too big")


class Matcher:
    """The compiled patterns: *plain* for single lines, and *line*, which
    extends each match to the end of its line (newline included), so that
    a search over a block yields where the matching line ends and the
    matches of findall() are on distinct lines."""

    def __init__(self, plain, line):
        self.plain, self.line = plain, line


def selected_runs(block: bytes, regex, invert: bool):
    """Yield ``(start, end)`` spans of *block* made of selected lines (end
    is just past the last line's newline, or the end of the block).
    *regex* is a line regex from :func:`compile_patterns`."""
    n = len(block)
    search = regex.line.search
    pos = 0
    while pos < n:
        m = search(block, pos)
        if m is not None and m.start() >= n and block[n - 1] == 10:
            m = None  # empty match after the final newline: not a line
        if m is None:
            if invert:
                yield pos, n
            return
        line_start = block.rfind(b"\n", pos, m.start()) + 1 or pos
        if invert:
            if line_start > pos:
                yield pos, line_start
        else:
            yield line_start, m.end()
        pos = m.end()


def count_matching_lines(block: bytes, regex) -> int:
    """Number of lines of *block* with a match (all in C: each findall
    match of the line regex covers the rest of a distinct line)."""
    if not block.endswith(b"\n"):
        block += b"\n"
    found = len(regex.line.findall(block))
    if found and regex.line.match(block, len(block)):
        found -= 1  # an empty match after the final newline is no line
    return found


def _count_lines(block: bytes, start: int, end: int) -> int:
    return block.count(b"\n", start, end) + (end > start and block[end - 1] != 10)


class _Search:
    """Options of one grep run, and the search of one input."""

    def __init__(self, ctx, opts, regex, invert: bool, with_names: bool):
        self.ctx = ctx
        self.regex = regex
        self.invert = invert
        # -q overrides -l and -L, which in turn override -c (as in GNU).
        self.quiet = "q" in opts
        lists = [k for k, _ in opts.items if k in "lL"]
        self.list_mode = lists[-1] if lists and not self.quiet else None
        self.count = "c" in opts and not self.quiet and self.list_mode is None
        self.numbers = "n" in opts
        self.with_names = with_names
        self.max_count = int(opts.get("m")) if opts.get("m") is not None else None
        self.out_quiet = self.count or self.quiet or self.list_mode is not None
        self.done_on_match = self.quiet or self.list_mode is not None

    def run(self, reader, label: str) -> int:
        """Search one input; return the number of selected lines."""
        if self.max_count == 0:
            return 0
        selected, lineno = 0, 0
        binary_from = None  # selected-line count when a NUL was first seen
        prefix = os.fsencode(label) + b":" if self.with_names else b""
        quiet, done_on_match = self.out_quiet, self.done_on_match
        fast_count = self.count and self.max_count is None
        for block in iter_blocks(reader):
            if binary_from is None and b"\0" in block:
                binary_from = selected
                if not self.count:
                    quiet = done_on_match = True
            if binary_from is not None:
                block = block.replace(b"\0", b"\n")
            if fast_count:
                found = count_matching_lines(block, self.regex)
                selected += _count_lines(block, 0, len(block)) - found if self.invert else found
                continue
            if not quiet and self.max_count is None:
                found, lines = self._print_block(block, prefix, lineno)
                selected += found
                lineno += lines
                continue
            pieces, counted_to = [], 0
            for start, end in selected_runs(block, self.regex, self.invert):
                lines = _count_lines(block, start, end)
                if self.max_count is not None and selected + lines >= self.max_count:
                    lines = self.max_count - selected
                    end = _line_offset(block, start, lines)
                if not quiet:
                    if self.numbers:
                        lineno += block.count(b"\n", counted_to, start)
                        counted_to = end
                    self._emit(pieces, block, start, end, prefix, lineno)
                    if self.numbers:
                        lineno += _count_lines(block, start, end)
                selected += lines
                if done_on_match or selected == self.max_count:
                    self.ctx.out.write(b"".join(pieces))
                    return self._finish(selected, binary_from, label)
            if pieces:
                self.ctx.out.write(b"".join(pieces))
            if self.numbers:
                lineno += block.count(b"\n", counted_to)
        return self._finish(selected, binary_from, label)

    def _print_block(self, block: bytes, prefix: bytes, lineno: int) -> tuple[int, int]:
        """Print the selected lines of *block* (all per-line work in C when
        possible); return (selected lines, lines in block)."""
        if not self.invert and not self.regex.line.search(block):
            return 0, _count_lines(block, 0, len(block))
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        test = self.regex.plain.search
        if self.numbers:
            keep = (lambda line: not test(line)) if self.invert else test
            numbered = [b"%s%d:%s\n" % (prefix, lineno + k, line)
                        for k, line in enumerate(lines, 1) if keep(line)]
            self.ctx.out.write(b"".join(numbered))
            return len(numbered), len(lines)
        chosen = list(filterfalse(test, lines) if self.invert else filter(test, lines))
        if chosen:
            self.ctx.out.write(prefix + (b"\n" + prefix).join(chosen) + b"\n")
        return len(chosen), len(lines)

    def _finish(self, selected: int, binary_from, label: str) -> int:
        if not self.out_quiet and binary_from is not None and selected > binary_from:
            self.ctx.error(f"{label}: binary file matches")
        return selected

    def _emit(self, pieces: list, block: bytes, start: int, end: int, prefix: bytes,
              lineno: int) -> None:
        """Append the output for the selected lines block[start:end]."""
        if not self.numbers and not prefix:
            pieces.append(block[start:end])
            if block[end - 1] != 10:
                pieces.append(b"\n")
            return
        lines = block[start:end].split(b"\n")
        if block[end - 1] == 10:
            lines.pop()
        if self.numbers:
            pieces.extend(b"%s%d:%s\n" % (prefix, lineno + k + 1, line)
                          for k, line in enumerate(lines))
        else:
            pieces.extend(prefix + line + b"\n" for line in lines)


def _line_offset(block: bytes, start: int, lines: int) -> int:
    """Offset just past *lines* lines starting at *start*."""
    pos = start
    for _ in range(lines):
        nl = block.find(b"\n", pos)
        if nl < 0:
            return len(block)
        pos = nl + 1
    return pos


@program("grep", "EFGiyvcnlLqswxhHm:e:f:", LONG, status=2, usage=USAGE,
         help="Usage: grep [OPTION]... PATTERNS [FILE]...\n")
def grep(ctx, opts, args) -> int:
    """Print lines of FILEs (or stdin) matching PATTERNS."""
    if opts.get("color") not in (None, "never", "auto", "tty", "if-tty", "none", "no"):
        ctx.error("vos grep writes no colors: --color=" + opts.get("color"))
        return 2
    invert = "v" in opts
    line_mode = "x" if "x" in opts else "w" if "w" in opts else None
    try:
        patterns = _patterns(ctx, opts, args)
        if not patterns:  # e.g. -f /dev/null: GNU matches nothing
            patterns, invert, line_mode = [b""], not invert, None
        max_count = opts.get("m")
        if max_count is not None and not (max_count.isascii() and max_count.isdigit()):
            raise _Fatal("invalid max count")
        regex = compile_patterns(ctx, patterns, opts, line_mode)
    except _Fatal as exc:
        ctx.error(str(exc))
        return 2
    cannot_match = invert and line_mode is None and not any(patterns)
    if (cannot_match or (max_count is not None and int(max_count) == 0)) and "L" not in opts:
        return 1  # GNU exits at once, without reading any input
    files = args or ["-"]
    with_names = "H" in opts if ("H" in opts or "h" in opts) else len(files) > 1
    if "h" in opts and "H" in opts:
        with_names = [k for k, _ in opts.items if k in "hH"][-1] == "H"
    search = _Search(ctx, opts, regex, invert, with_names)
    return _grep_files(ctx, opts, search, files)


def _grep_files(ctx, opts, search: _Search, files: list[str]) -> int:
    matched = error = False
    for name in files:
        label = STDIN_LABEL if name == "-" else name
        selected, failed = _grep_one(ctx, opts, search, name, label)
        error = error or failed
        if selected is None:
            continue
        if search.count:
            prefix = os.fsencode(label) + b":" if search.with_names else b""
            ctx.out.write(prefix + b"%d\n" % selected)
        if search.list_mode and (selected > 0) == (search.list_mode == "l"):
            ctx.out.write(os.fsencode(label) + b"\n")
        matched = matched or selected > 0
        if search.quiet and matched:
            return 0
    if error and not (search.quiet and matched):
        return 2
    return 0 if matched else 1


def _grep_one(ctx, opts, search: _Search, name: str, label: str):
    """Search one file; return (selected lines or None if it could not be
    opened, whether an error happened).  As in GNU, a read error (e.g. a
    directory) ends the search of that file, which then counts as having
    no selected lines (its -c count and -L name are still printed)."""
    try:
        reader = ctx.open_input(name)
    except OSError as exc:
        if "s" not in opts:
            ctx.error(f"{name}: {os.strerror(exc.errno)}")
        return None, True
    with reader:
        try:
            return search.run(reader, label), False
        except InputError as exc:
            if "s" not in opts:
                ctx.error(f"{name}: {os.strerror(exc.exc.errno)}")
            return 0, True
