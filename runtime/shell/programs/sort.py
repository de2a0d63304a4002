"""The sort built-in (GNU coreutils 9.1 semantics, C locale byte order).

Supported: ``-n -r -u -f -b -s``, ``-k POS1[,POS2]`` with per-key flags
``b f n r``, ``-t SEP`` and ``-o FILE``.  Keys are extracted exactly like
GNU's ``begfield``/``limfield``: with the default separator a field
includes its leading blanks.  When all keys compare equal the whole lines
are compared bytewise (the "last resort" comparison), unless ``-s``/``-u``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from ._base import InputError, iter_chunks, program, quote, quotef, strerror

_FIELD = re.compile(rb"[ \t]*[^ \t]*")
_BLANKS = re.compile(rb"[ \t]*")
_NUMBER = re.compile(rb"[ \t]*(-?)(\d*)(?:\.(\d*))?")


@dataclass
class Key:
    """One ``-k`` key (0-based field/char positions, like GNU's struct)."""
    sword: int = 0
    schar: int = 0
    eword: int | None = None   # None: to end of line
    echar: int = 0
    skipsblanks: bool = False
    skipeblanks: bool = False
    numeric: bool = False
    fold: bool = False
    reverse: bool = False

    def has_ordering(self) -> bool:
        return self.skipsblanks or self.skipeblanks or self.numeric or self.fold


class _SortError(Exception):
    """A fatal sort error: message printed, exit status 2."""


def _set_flags(key: Key, flags: bytes | str, at_end: bool, spec: str) -> None:
    for flag in flags:
        if flag == "b":
            if at_end:
                key.skipeblanks = True
            else:
                key.skipsblanks = True
        elif flag in "fnr":
            setattr(key, {"f": "fold", "n": "numeric", "r": "reverse"}[flag], True)
        else:
            raise _SortError(f"stray character in field spec: invalid field specification {quote(spec)}")


def parse_key(spec: str) -> Key:
    """Parse ``-k`` POS1[,POS2] where POS is F[.C][OPTS]."""
    m = re.fullmatch(r"(\d*)(?:\.(\d*))?([a-zA-Z]*)(?:,(\d*)(?:\.(\d*))?([a-zA-Z]*))?(.*)", spec, re.S)
    sword, schar, sflags, eword, echar, eflags, rest = m.groups()

    def bad(why):
        return _SortError(f"{why}: invalid field specification {quote(spec)}")

    if not sword:
        raise bad("invalid number at field start")
    if int(sword) == 0:
        raise bad("field number is zero")
    if schar is not None and (not schar or int(schar) == 0):
        raise bad("character offset is zero" if schar else "invalid number after '.'")
    if rest or (eword is not None and spec.count(",") and not eword):
        raise bad("invalid number after ','" if "," in spec and not eword else
                  "stray character in field spec")
    key = Key(sword=int(sword) - 1, schar=int(schar) - 1 if schar else 0)
    _set_flags(key, sflags, False, spec)
    if eword is not None:
        if int(eword) == 0:
            raise bad("field number is zero")
        key.eword = int(eword) - 1
        key.echar = int(echar) if echar else 0
        _set_flags(key, eflags, True, spec)
    return key


def _skip_fields(line: bytes, count: int, tab: bytes | None, consume_last: bool) -> int:
    pos = 0
    for i in range(count):
        if pos >= len(line):
            break
        if tab is None:
            pos = _FIELD.match(line, pos).end()
            continue
        p = line.find(tab, pos)
        if p < 0:
            return len(line)
        pos = p + 1 if (consume_last or i < count - 1) else p
    return pos


def key_text(line: bytes, key: Key, tab: bytes | None) -> bytes:
    """The part of *line* selected by *key* (GNU begfield/limfield)."""
    beg = _skip_fields(line, key.sword, tab, True)
    if key.skipsblanks:
        beg = _BLANKS.match(line, beg).end()
    beg = min(len(line), beg + key.schar)
    if key.eword is None:
        return line[beg:]
    eword = key.eword + (0 if key.echar else 1)
    lim = _skip_fields(line, eword, tab, bool(key.echar))
    if key.echar:
        if key.skipeblanks:
            lim = _BLANKS.match(line, lim).end()
        lim = min(len(line), lim + key.echar)
    return line[beg:lim] if lim > beg else b""


def numeric_value(text: bytes):
    """Value of a leading decimal number (GNU -n, C locale); 0 if none."""
    sign, whole, frac = _NUMBER.match(text).groups()
    if not whole and not frac:
        return 0
    if frac and frac.strip(b"0"):
        value = Decimal((whole or b"0").decode() + "." + frac.decode())
    else:
        value = int(whole or b"0")
    return -value if sign else value


class _Rev:
    """Wraps a sort key component to invert its order."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __lt__(self, other):
        return other.value < self.value

    def __eq__(self, other):
        return self.value == other.value


def _key_function(keys, tab, last_resort, mixed, global_reverse):
    """Build the Python sort key for a line."""
    def component(line, key):
        text = key_text(line, key, tab)
        if key.numeric:
            value = numeric_value(text)
        else:
            value = text.upper() if key.fold else text
        return _Rev(value) if mixed and key.reverse else value

    def sort_key(line):
        parts = tuple(component(line, k) for k in keys)
        if last_resort:
            parts += (_Rev(line) if mixed and global_reverse else line,)
        return parts
    return sort_key


def _read_lines(ctx, names) -> list[bytes]:
    lines: list[bytes] = []
    for name in names:
        try:
            reader = ctx.open_input(name)
        except OSError as exc:
            raise _SortError(f"cannot read: {quotef(name)}: {strerror(exc)}")
        with reader:
            try:
                data = b"".join(iter_chunks(reader))
            except InputError as exc:
                raise _SortError(f"read failed: {quotef(name)}: {strerror(exc.exc)}")
        if data:
            part = data.split(b"\n")
            if not part[-1]:
                part.pop()
            lines.extend(part)
    return lines


def _global_key(opts) -> Key:
    key = Key()
    _set_flags(key, "".join(k for k, _ in opts.items if k in "bfnr"), False, "")
    key.skipeblanks = key.skipsblanks
    return key


def _tab(opts) -> bytes | None:
    tab = opts.get("t")
    if tab is None:
        return None
    data = tab.encode("utf-8", "surrogateescape")
    if not data:
        raise _SortError("empty tab")
    if data == b"\\0":
        return b"\0"
    if len(data) > 1:
        raise _SortError(f"multi-character tab {quote(tab)}")
    return data


@program("sort", "bfnrsuk:t:o:", {"ignore-leading-blanks": ("b", False),
                                   "ignore-case": ("f", False),
                                   "numeric-sort": ("n", False), "reverse": ("r", False),
                                   "stable": ("s", False), "unique": ("u", False),
                                   "key": ("k", True), "field-separator": ("t", True),
                                   "output": ("o", True)}, status=2)
def sort(ctx, opts, args) -> int:
    """Sort lines of all FILEs (C locale byte order)."""
    try:
        return _sort(ctx, opts, args)
    except _SortError as exc:
        ctx.error(str(exc))
        return 2


def _sort(ctx, opts, args) -> int:
    gkey = _global_key(opts)
    keys = [parse_key(spec) for spec in opts.all("k")]
    tab = _tab(opts)
    for key in keys:
        if not key.has_ordering() and not key.reverse:
            key.skipsblanks, key.skipeblanks = gkey.skipsblanks, gkey.skipeblanks
            key.numeric, key.fold, key.reverse = gkey.numeric, gkey.fold, gkey.reverse
    if not keys and gkey.has_ordering():
        keys = [gkey]
    unique = "u" in opts
    last_resort = not (unique or "s" in opts)
    lines = _read_lines(ctx, args or ["-"])
    directions = {k.reverse for k in keys} | ({gkey.reverse} if last_resort else set())
    mixed = len(directions) > 1
    reverse = (not mixed) and (directions or {gkey.reverse}).pop()
    if keys:
        sort_key = _key_function(keys, tab, last_resort, mixed, gkey.reverse)
        decorated = sorted(((sort_key(line), line) for line in lines),
                           key=lambda pair: pair[0], reverse=reverse)
    else:
        decorated = [(line, line) for line in sorted(lines, reverse=reverse)]
    if unique:
        decorated = _dedupe(decorated)
    output = b"".join(line + b"\n" for _, line in decorated)
    return _write_output(ctx, opts, output)


def _dedupe(decorated):
    """Keep the first line of each run of equal keys (GNU -u)."""
    result = []
    for key, line in decorated:
        if not result or not key == result[-1][0]:
            result.append((key, line))
    return result


def _write_output(ctx, opts, output: bytes) -> int:
    target = opts.get("o")
    if target is None or target == "-":
        ctx.out.write(output)
        return 0
    try:
        with open(ctx.path(target), "wb") as f:
            f.write(output)
    except OSError as exc:
        raise _SortError(f"open failed: {quotef(target)}: {strerror(exc)}")
    return 0

