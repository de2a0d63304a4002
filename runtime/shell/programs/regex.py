"""Translation of POSIX basic/extended regular expressions (GNU dialect) to
Python :mod:`re` byte patterns, as used by the vos ``grep``.

The translation is done by a small recursive-descent parser so that GNU's
context rules are honoured: in a BRE ``*`` is literal at the start of an
expression, ``^``/``$`` are anchors only at the ends of an expression,
``\\( \\) \\{ \\} \\| \\+ \\?`` are operators and ``( ) { } | + ?`` are
literals; in an ERE the reverse, a leading repetition operator is ignored
with a warning, and an invalid ``{`` is literal.  Bracket expressions are
evaluated to explicit byte sets (C locale) so POSIX classes, ranges and
negation behave exactly as in GNU grep.  The emitted pattern never matches
a newline, which lets grep search whole blocks of lines at once with
``re.MULTILINE``.

Errors raise :class:`RegexError` carrying GNU's message.
"""

from __future__ import annotations

import re

RE_DUP_MAX = 32767

CLASSES = {
    "alpha": lambda b: 65 <= b <= 90 or 97 <= b <= 122,
    "digit": lambda b: 48 <= b <= 57,
    "alnum": lambda b: 65 <= b <= 90 or 97 <= b <= 122 or 48 <= b <= 57,
    "upper": lambda b: 65 <= b <= 90,
    "lower": lambda b: 97 <= b <= 122,
    "space": lambda b: b in b" \t\n\v\f\r",
    "blank": lambda b: b in b" \t",
    "punct": lambda b: 33 <= b <= 126 and not chr(b).isalnum(),
    "print": lambda b: 32 <= b <= 126,
    "graph": lambda b: 33 <= b <= 126,
    "cntrl": lambda b: b < 32 or b == 127,
    "xdigit": lambda b: b in b"0123456789ABCDEFabcdef",
}

_ESCAPES = {
    ord("w"): rb"\w", ord("W"): rb"[^\w\n]", ord("s"): rb"[ \t\v\f\r]",
    ord("S"): rb"\S", ord("b"): rb"\b", ord("B"): rb"\B",
    ord("<"): rb"\b(?=\w)", ord(">"): rb"\b(?<=\w)", ord("`"): rb"^", ord("'"): rb"$",
}
_INTERVAL = re.compile(rb"(\d*)(,(\d*))?")


class RegexError(Exception):
    """An invalid regular expression (message as GNU grep prints it)."""


def byte_class(members: set[int]) -> bytes:
    """A Python character class matching exactly the bytes in *members*."""
    if not members:
        return rb"(?!)"
    parts, values = [], sorted(members)
    start = prev = values[0]
    for b in values[1:] + [None]:
        if b is not None and b == prev + 1:
            prev = b
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        if b is not None:
            start = prev = b
    return b"[" + b"".join(parts) + b"]"


class _Item:
    """One element of a concatenation: its Python text and whether it has
    already been quantified (POSIX allows ``a**``, Python does not)."""
    __slots__ = ("text", "quantified", "anchor")

    def __init__(self, text: bytes, anchor: bool = False):
        self.text, self.quantified, self.anchor = text, False, anchor


class Translator:
    """Translate one GNU BRE/ERE into Python regex syntax (bytes)."""

    def __init__(self, pattern: bytes, extended: bool, icase: bool = False,
                 group_base: int = 0, warn=None):
        self.p = pattern
        self.i = 0
        self.ere = extended
        self.icase = icase
        self.base = group_base
        self.ngroups = 0
        self.completed: set[int] = set()
        self.warn = warn or (lambda message: None)

    # -- scanning helpers
    def peek(self, k: int = 0) -> int | None:
        j = self.i + k
        return self.p[j] if j < len(self.p) else None

    def at_alt(self) -> bool:
        if self.ere:
            return self.peek() == ord("|")
        return self.peek() == 92 and self.peek(1) == ord("|")

    def at_close(self) -> bool:
        if self.ere:
            return self.peek() == ord(")")
        return self.peek() == 92 and self.peek(1) == ord(")")

    # -- grammar
    def translate(self) -> bytes:
        text = self.alternation(depth=0)
        if self.i < len(self.p):  # only a BRE "\)" can stop us here
            raise RegexError("Unmatched ) or \\)")
        return text

    def alternation(self, depth: int) -> bytes:
        branches = [self.sequence(depth)]
        while self.at_alt():
            self.i += 1 if self.ere else 2
            branches.append(self.sequence(depth))
        return b"|".join(branches)

    def sequence(self, depth: int) -> bytes:
        items: list[_Item] = []
        # GNU dfa's "laststart": true at the start of an expression (and
        # after '(' or '|'); anchors leave it unchanged, other atoms clear it.
        laststart = True
        while self.i < len(self.p) and not self.at_alt():
            if self.at_close() and (depth or not self.ere):
                break
            applied = self.quantifier(items, laststart, depth)
            if applied:
                laststart = laststart and applied != "interval"
                continue
            item = self.atom(items, depth)
            items.append(item)
            laststart = laststart and item.anchor
        return b"".join(item.text for item in items)

    def quantifier(self, items: list[_Item], laststart: bool, depth: int):
        """Parse a repetition operator if one is next and apply it to the
        last item.  Returns False if the next token is not a quantifier
        (in a BRE, an operator at the start of an expression is literal),
        else "interval" or "simple"."""
        c = self.peek()
        if c == ord("*"):
            length, q, name = 1, b"*", "*"
        elif self.ere and c in (ord("+"), ord("?")):
            length, q, name = 1, bytes((c,)), chr(c)
        elif not self.ere and c == 92 and self.peek(1) in (ord("+"), ord("?")):
            length, q, name = 2, bytes((self.peek(1),)), chr(self.peek(1))
        elif (self.ere and c == ord("{")) or (not self.ere and c == 92 and self.peek(1) == ord("{")):
            length, q, name = 0, None, "{...}"
        else:
            return False
        if laststart and not self.ere:
            return False
        if q is None:
            q = self.interval()
            if q is None:
                return False
        self.i += length
        if laststart:
            self.warn(f"{name} at start of expression")
        kind = "interval" if length == 0 else "simple"
        if not items:
            return kind
        last = items[-1]
        if last.quantified or last.anchor:
            last.text = b"(?:" + last.text + b")"
        last.text += q
        last.quantified = True
        if (last.anchor and self.ere and depth and kind == "simple"
                and self.peek() == ord(")")):
            # glibc skips a '*', '+' or '?' after an anchor and then takes
            # the ')' as a literal, leaving the group unclosed.
            raise RegexError("Unmatched ( or \\(")
        return kind

    def interval(self) -> bytes | None:
        """Parse ``{m,n}`` (ERE) / ``\\{m,n\\}`` (BRE); None if an ERE brace
        is not a valid interval (it is then a literal)."""
        open_len = 1 if self.ere else 2
        m = _INTERVAL.match(self.p, self.i + open_len)
        close = b"}" if self.ere else b"\\}"
        end = m.end()
        valid = self.p.startswith(close, end) and (m.group(1) or m.group(2))
        if self.p.startswith(close, self.i + open_len):
            raise RegexError("Invalid content of \\{\\}")
        if self.ere and not valid:
            return None  # not an interval: the brace is a literal
        if not valid:
            if self.p.find(b"\\}", self.i) < 0:
                raise RegexError("Unmatched \\{")
            raise RegexError("Invalid content of \\{\\}")
        lo = int(m.group(1)) if m.group(1) else 0
        hi = None if m.group(2) and not m.group(3) else int(m.group(3) or m.group(1))
        if (hi is not None and hi < lo):
            raise RegexError("Invalid content of \\{\\}")
        if max(lo, hi or 0) > RE_DUP_MAX:
            raise RegexError("Regular expression too big")
        self.i = end + len(close)
        if hi is None:
            return b"{%d,}" % lo
        return b"{%d}" % lo if hi == lo else b"{%d,%d}" % (lo, hi)

    def atom(self, items: list[_Item], depth: int) -> _Item:
        c = self.p[self.i]
        self.i += 1
        if c == ord("["):
            return _Item(self.bracket())
        if c == ord("."):
            return _Item(b".")
        if c == ord("^") and (self.ere or not items):
            return _Item(b"^", anchor=True)
        if c == ord("$") and (self.ere or self.at_end_of_sequence()):
            return _Item(b"$", anchor=True)
        if self.ere and c == ord("("):
            return self.group(depth)
        if c == 92:
            return self.escape(depth)
        return _Item(re.escape(bytes((c,))))

    def at_end_of_sequence(self) -> bool:
        return self.i >= len(self.p) or self.at_alt() or self.at_close()

    def group(self, depth: int) -> _Item:
        self.ngroups += 1
        number = self.ngroups
        inner = self.alternation(depth + 1)
        if not self.at_close():
            raise RegexError("Unmatched ( or \\(")
        self.i += 1 if self.ere else 2
        self.completed.add(number)
        return _Item(b"(" + inner + b")")

    def escape(self, depth: int) -> _Item:
        if self.i >= len(self.p):
            raise RegexError("Trailing backslash")
        c = self.p[self.i]
        self.i += 1
        if not self.ere and c == ord("("):
            return self.group(depth)
        if ord("1") <= c <= ord("9"):
            n = c - ord("0")
            if n not in self.completed:
                raise RegexError("Invalid back reference")
            return _Item(b"(?:\\%d)" % (n + self.base))
        if c in _ESCAPES:
            return _Item(_ESCAPES[c], anchor=c in (ord("`"), ord("'"), ord("b"), ord("B"), ord("<"), ord(">")))
        return _Item(re.escape(bytes((c,))))

    # -- bracket expressions
    def bracket(self) -> bytes:
        negate = self.peek() == ord("^")
        if negate:
            self.i += 1
        if self.i >= len(self.p):
            raise RegexError("Invalid regular expression")
        start = self.i
        members: set[int] = set()
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise RegexError("Unmatched [, [^, [:, [., or [=")
            if c == ord("]") and not first:
                self.i += 1
                break
            first = False
            lo = self.bracket_element()
            if isinstance(lo, set):
                members |= lo
                if self.peek() == ord("-") and self.peek(1) not in (ord("]"), None):
                    raise RegexError("Invalid range end")
                continue
            if self.peek() == ord("-") and self.peek(1) not in (ord("]"), None):
                self.i += 1
                hi = self.bracket_element()
                if isinstance(hi, set):
                    raise RegexError("Invalid range end")
                if hi < lo:
                    raise RegexError("Invalid range end")
                members.update(range(lo, hi + 1))
            else:
                members.add(lo)
        self.check_colon_syntax(self.p[start:self.i - 1])
        if self.icase:
            members |= {b ^ 0x20 for b in members if CLASSES["alpha"](b)}
        if negate:
            members = set(range(256)) - members - {10}
        members.discard(10)
        return byte_class(members)

    @staticmethod
    def check_colon_syntax(content: bytes) -> None:
        if re.fullmatch(rb":[a-z]+:", content):
            raise RegexError("character class syntax is [[:space:]], not [:space:]")

    def bracket_element(self):
        """One bracket element: a byte value, or a set for ``[:class:]``."""
        c = self.p[self.i]
        if c == ord("[") and self.peek(1) in (ord(":"), ord("="), ord(".")):
            kind = self.p[self.i + 1:self.i + 2]
            end = self.p.find(kind + b"]", self.i + 2)
            if end < 0:
                raise RegexError("Unmatched [, [^, [:, [., or [=")
            name = self.p[self.i + 2:end]
            self.i = end + 2
            if kind == b":":
                test = CLASSES.get(name.decode("latin-1"))
                if test is None:
                    raise RegexError("Invalid character class name")
                return {b for b in range(256) if test(b)}
            if len(name) != 1:
                raise RegexError("Invalid collation character")
            return name[0]
        self.i += 1
        return c


def translate(pattern: bytes, extended: bool, icase: bool = False, group_base: int = 0,
              warn=None) -> tuple[bytes, int]:
    """Translate a GNU BRE/ERE; return (python_pattern, number_of_groups).

    *warn* receives GNU's "X at start of expression" warnings, which are
    only issued for patterns that compile (as GNU grep does)."""
    warnings: list[str] = []
    t = Translator(pattern, extended, icase, group_base, warnings.append)
    text = t.translate()
    for message in warnings:
        (warn or (lambda m: None))(message)
    return text, t.ngroups
