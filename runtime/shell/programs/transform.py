"""Byte/field transforming built-ins: cut and tr (GNU coreutils 9.1, C locale).

Both stream: cut works line by line, tr chunk by chunk (``bytes.translate``
plus a regular expression for ``-s`` squeezing).
"""

from __future__ import annotations

import os
import re

from ._base import UsageError, iter_chunks, iter_lines, program, quote

INF = float("inf")


# ---------------------------------------------------------------- cut

def _parse_list(text: str, fields: bool) -> list[tuple[int, float]]:
    """Parse a cut LIST (``1,3-4,5-``) into sorted, merged 1-based ranges,
    with GNU's error messages."""
    what = "field value" if fields else "byte/character position"
    from_one = "fields" if fields else "byte/character positions"
    ranges = []
    for m in re.finditer(r"[^,\t ]*", text):
        item = m.group()
        if m.start() and m.start() == m.end() and text[m.start() - 1] not in ",\t ":
            continue  # the empty match finditer yields after each item
        bad = re.search(r"[^0-9-]", item)
        if bad:
            raise UsageError(f"invalid {what} {quote(text[m.start() + bad.start():])}")
        if item.count("-") > 1:
            raise UsageError("invalid field range" if fields else "invalid byte or character range")
        if item == "-":
            raise UsageError("invalid range with no endpoint: -")
        lo_text, dash, hi_text = item.partition("-")
        lo = int(lo_text) if lo_text else (1 if dash else 0)
        hi = (int(hi_text) if hi_text else INF) if dash else lo
        if lo == 0 or hi == 0:
            raise UsageError(f"{from_one} are numbered from 1")
        if hi < lo:
            raise UsageError("invalid decreasing range")
        ranges.append((lo, hi))
    ranges.sort()
    merged = [ranges[0]]
    for lo, hi in ranges[1:]:
        if lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _complement(ranges):
    result, nxt = [], 1
    for lo, hi in ranges:
        if lo > nxt:
            result.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt != INF:
        result.append((nxt, INF))
    return result


def _slices(ranges):
    """Ranges as Python slice bounds (0-based, end exclusive)."""
    return [(lo - 1, None if hi == INF else int(hi)) for lo, hi in ranges]


def _cut_mode(ctx, opts):
    """Validate cut's options; return (kind, slices, delim, out_delim, only)."""
    lists = [(k, v) for k, v in opts.items if k in "bcf"]
    if not lists:
        raise UsageError("you must specify a list of bytes, characters, or fields")
    if len({k for k, _ in lists}) > 1:
        raise UsageError("only one list may be specified")
    kind, text = lists[-1]
    fields = kind == "f"
    if "d" in opts and not fields:
        raise UsageError("an input delimiter may be specified only when operating on fields")
    if "s" in opts and not fields:
        raise UsageError("suppressing non-delimited lines makes sense\n"
                         "\tonly when operating on fields")
    delim = os.fsencode(opts.get("d", "\t"))
    if len(delim) > 1:
        raise UsageError("the delimiter must be a single character")
    delim = delim or b"\0"
    ranges = _parse_list(text, fields)
    if "complement" in opts:
        ranges = _complement(ranges)
    out_delim = opts.get("output-delimiter")
    out_delim = os.fsencode(out_delim) if out_delim is not None else (delim if fields else b"")
    return fields, _slices(ranges), delim, out_delim, "s" in opts


@program("cut", "b:c:d:f:sn", {"bytes": ("b", True), "characters": ("c", True),
                               "delimiter": ("d", True), "fields": ("f", True),
                               "only-delimited": ("s", False),
                               "complement": ("complement", False),
                               "output-delimiter": ("output-delimiter", True)})
def cut(ctx, opts, args) -> int:
    """Print selected bytes (-b/-c LIST) or fields (-f LIST, -d DELIM)."""
    fields, slices, delim, out_delim, only_delimited = _cut_mode(ctx, opts)

    def cut_fields(line: bytes):
        if delim not in line:
            return None if only_delimited else line
        parts = line.split(delim)
        return out_delim.join(p for a, b in slices for p in parts[a:b])

    def cut_bytes(line: bytes):
        return out_delim.join(line[a:b] for a, b in slices if a < len(line))

    select = cut_fields if fields else cut_bytes

    def handle(name, reader):
        for line in iter_lines(reader):
            result = select(line[:-1] if line.endswith(b"\n") else line)
            if result is not None:
                ctx.out.write(result + b"\n")

    return ctx.for_each_input(args or ["-"], handle)


# ---------------------------------------------------------------- tr

_CLASSES = {
    "alnum": b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "alpha": b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "blank": b"\t ",
    "cntrl": bytes(range(32)) + b"\x7f",
    "digit": b"0123456789",
    "graph": bytes(range(33, 127)),
    "lower": b"abcdefghijklmnopqrstuvwxyz",
    "print": bytes(range(32, 127)),
    "punct": bytes(b for b in range(33, 127) if not chr(b).isalnum()),
    "space": b"\t\n\v\f\r ",
    "upper": b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "xdigit": b"0123456789ABCDEFabcdef",
}
_TR_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13,
               ord("t"): 9, ord("v"): 11}
_TR_TOKEN = re.compile(rb"\[:([a-z]+):\]|\[=(\\?.)=\]|\[(\\?.)\*(\d*)\]|(\\[0-7]{1,3}|\\.?|.)",
                       re.S)


def _tr_char(token: bytes) -> int:
    """Value of one (possibly escaped) tr character."""
    if token[:1] != b"\\" or len(token) == 1:
        return token[0]
    if token[1] in b"01234567":
        return int(token[1:], 8) & 0xFF
    return _TR_ESCAPES.get(token[1], token[1])


class _CaseChar(int):
    """A byte that came from an ``[:upper:]``/``[:lower:]`` construct
    (*start* marks the construct's first byte): GNU pairs such constructs
    in SET1 and SET2 as whole units."""

    def __new__(cls, value: int, name: str, start: bool):
        self = super().__new__(cls, value)
        self.name, self.start = name, start
        return self


class _Fill:
    """A ``[c*]`` construct of SET2, expanded once SET1's length is known."""

    def __init__(self, char: int):
        self.char = char


def _tr_set(text: bytes, is_set2: bool, translating: bool) -> tuple[list, bool]:
    """Expand a tr SET into a list of bytes (ints, :class:`_CaseChar`s
    and at most one :class:`_Fill`); also say whether it used a class."""
    items: list = []
    has_class = False
    for m in _TR_TOKEN.finditer(text):
        cls, equiv, rep_char, rep_count, single = m.groups()
        if cls is not None:
            name = cls.decode()
            has_class = True
            if name not in _CLASSES:
                raise _TrError(f"invalid character class {quote(name)}")
            if is_set2 and translating and name not in ("upper", "lower"):
                raise _TrError("when translating, the only character classes that may "
                               "appear in\nstring2 are 'upper' and 'lower'")
            if name in ("upper", "lower"):
                items.extend(_CaseChar(b, name, k == 0) for k, b in enumerate(_CLASSES[name]))
            else:
                items.extend(_CLASSES[name])
        elif equiv is not None:
            items.append(_tr_char(equiv))
        elif rep_char is not None:
            if rep_count:
                items.extend([_tr_char(rep_char)] * int(rep_count, 8 if rep_count[:1] == b"0" else 10))
            else:
                items.append(_Fill(_tr_char(rep_char)))
        else:
            items.append(_tr_char(single))
    return _tr_ranges(items), has_class


def _plain(item) -> bool:
    return type(item) is int


def _tr_ranges(items: list) -> list:
    """Expand ``a-z`` ranges in a list of expanded set items."""
    out: list = []
    i = 0
    while i < len(items):
        if (i + 2 < len(items) and items[i + 1] == ord("-") and _plain(items[i + 1])
                and _plain(items[i]) and _plain(items[i + 2])):
            lo, hi = items[i], items[i + 2]
            if hi < lo:
                raise _TrError("range-endpoints of '%s-%s' are in reverse collating "
                               "sequence order" % (chr(lo), chr(hi)))
            out.extend(range(lo, hi + 1))
            i += 3
        else:
            out.append(items[i])
            i += 1
    return out


class _TrError(Exception):
    """A tr SET error (reported without the --help hint)."""


def _tr_check_operands(opts, args) -> None:
    delete, squeeze = "d" in opts, "s" in opts
    need = 2 if (delete and squeeze) or not (delete or squeeze) else 1
    if not args:
        raise UsageError("missing operand")
    if len(args) < need:
        why = ("Two strings must be given when both deleting and squeezing repeats."
               if delete else "Two strings must be given when translating.")
        raise UsageError(f"missing operand after {quote(args[-1])}\n{why}")
    limit = 1 if delete and not squeeze else 2
    if len(args) > limit:
        extra = ("\nOnly one string may be given when deleting without squeezing repeats."
                 if limit == 1 else "")
        raise UsageError(f"extra operand {quote(args[limit])}{extra}")


def _tr_plan(opts, args):
    """Compute (table, delete_bytes, squeeze_bytes) for bytes.translate."""
    complement, delete, squeeze = "c" in opts, "d" in opts, "s" in opts
    translating = not delete and len(args) == 2
    set1, classes1 = _tr_set(os.fsencode(args[0]), False, translating)
    set2, _ = _tr_set(os.fsencode(args[1]), True, translating) if len(args) > 1 else ([], False)
    if any(isinstance(c, _Fill) for c in set1):
        raise _TrError("the [c*] repeat construct may not appear in string1")
    if complement:
        members = set(set1)
        set1 = [b for b in range(256) if b not in members]
    table = bytearray(range(256))
    if translating:
        set2 = _tr_fill(set2, len(set1))
        if not complement:
            _tr_check_case_alignment(set1, set2)
        if len(set1) > len(set2):
            if not set2:
                raise _TrError("when not truncating set1, string2 must be non-empty")
            if isinstance(set2[-1], _CaseChar):
                raise _TrError("when translating with string1 longer than string2,\n"
                               "the latter string must not end with a character class")
            set2 = set2 + [int(set2[-1])] * (len(set1) - len(set2))
        if complement and classes1 and len(set(set2)) > 1:
            raise _TrError("when translating with complemented character classes,\n"
                           "string2 must map all characters in the domain to one")
        _tr_map(set1, set2, table, pair_classes=not complement)
    else:
        set2 = [c.char if isinstance(c, _Fill) else c for c in set2]
    deleted = bytes(sorted(set(set1))) if delete else b""
    squeezed = set2 if (translating or delete) else set1
    squeezed = bytes(sorted(set(squeezed))) if squeeze else b""
    return bytes(table), deleted, squeezed


def _tr_check_case_alignment(set1: list, set2: list) -> None:
    """GNU validate_case_classes: an [:upper:]/[:lower:] in SET2 must start
    where an [:upper:]/[:lower:] construct starts in SET1."""
    i = j = 0
    while j < len(set2):
        src, dst = set1[i] if i < len(set1) else None, set2[j]
        if isinstance(dst, _CaseChar) and dst.start:
            if not (isinstance(src, _CaseChar) and src.start):
                raise _TrError("misaligned [:upper:] and/or [:lower:] construct")
            i += len(_CLASSES[src.name])
            j += len(_CLASSES[dst.name])
        elif src is None:
            break
        else:
            i += 1
            j += 1


def _tr_map(set1: list, set2: list, table: bytearray, pair_classes: bool) -> None:
    """Fill the translation *table* from SET1 to (padded) SET2."""
    i = j = 0
    while i < len(set1) and j < len(set2):
        src, dst = set1[i], set2[j]
        if pair_classes and isinstance(dst, _CaseChar) and dst.start:
            for a, b in zip(_CLASSES[src.name], _CLASSES[dst.name]):
                table[a] = b
            i += len(_CLASSES[src.name])
            j += len(_CLASSES[dst.name])
            continue
        table[src] = dst
        i += 1
        j += 1


def _tr_fill(set2: list, length: int) -> list:
    """Expand a ``[c*]`` construct of SET2 to pad it to *length*."""
    fills = [k for k, c in enumerate(set2) if isinstance(c, _Fill)]
    if not fills:
        return set2
    k = fills[0]
    rest = [c for c in set2[k + 1:] if not isinstance(c, _Fill)]
    count = max(0, length - k - len(rest))
    return set2[:k] + [set2[k].char] * count + rest


@program("tr", "cdsC", {"complement": ("c", False), "delete": ("d", False),
                        "squeeze-repeats": ("s", False)},
         help="Usage: tr [OPTION]... STRING1 [STRING2]\n")
def tr(ctx, opts, args) -> int:
    """Translate, delete (-d) or squeeze (-s) bytes from stdin to stdout."""
    if "C" in opts:
        opts.items.append(("c", None))
    _tr_check_operands(opts, args)
    try:
        table, deleted, squeezed = _tr_plan(opts, args)
    except _TrError as exc:
        ctx.error(str(exc))
        return 1
    squeeze = None
    if squeezed:
        cls = b"".join(b"\\x%02x" % b for b in squeezed)
        squeeze = re.compile(b"([" + cls + b"])\\1+")
    last = -1
    for chunk in iter_chunks(ctx.stdin, 1 << 16):
        chunk = chunk.translate(table, deleted)
        if squeeze is not None and chunk:
            chunk = squeeze.sub(b"\\1", chunk)
            if chunk[0] == last and chunk[0] in squeezed:
                chunk = chunk.lstrip(bytes((last,)))
        if chunk:
            last = chunk[-1]
            ctx.out.write(chunk)
    return 0
