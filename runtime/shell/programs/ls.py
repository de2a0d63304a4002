"""The ls built-in (GNU coreutils 9.1, output as when stdout is a pipe).

Supported options: ``-a -A -l -h -1 -R -d -r -t -S -n``.  Names are listed
one per line, unquoted, like GNU ls writing to a non-terminal.  Names are
sorted in C-locale byte order (as ``LC_ALL=C ls``), not by the locale's
collation.  Long format reproduces GNU's columns: mode string, link count,
owner and group (names via :mod:`pwd`/:mod:`grp`, numeric if unknown), size
(``-h``: GNU's ceiling-rounded 1.1K/4.0K/12M), modification time
(``%b %e %H:%M`` within the last six months, else ``%b %e  %Y``, using
:func:`time.localtime`), ``name -> target`` for symlinks, and a
``total`` line in 1K blocks.  ACL/SELinux mode markers are not shown.
"""

from __future__ import annotations

import grp
import math
import os
import pwd
import stat
import time

from ._base import program, quote, strerror

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SUFFIXES = "KMGTPEZYRQ"
SIX_MONTHS_NS = 31556952 * 10**9 // 2


def human_size(n: int) -> str:
    """GNU ``human_readable`` with ``-h`` options: base 1024, autoscale,
    rounding up, one decimal below 10."""
    if n < 1024:
        return str(n)
    exp, amount = 0, n
    while amount >= 1024 and exp < len(SUFFIXES):
        amount //= 1024
        exp += 1
    from fractions import Fraction          # (-h only: not imported by every shell)
    exact = Fraction(n, 1024 ** exp)
    if amount < 10:
        tenths = math.ceil(exact * 10)
        if tenths < 100:
            return f"{tenths // 10}.{tenths % 10}{SUFFIXES[exp - 1]}"
        return f"10{SUFFIXES[exp - 1]}"
    whole = math.ceil(exact)
    if whole == 1024 and exp < len(SUFFIXES):
        return f"1.0{SUFFIXES[exp]}"
    return f"{whole}{SUFFIXES[exp - 1]}"


class Entry:
    """A file to list: display name, path on disk and lstat result."""
    __slots__ = ("name", "path", "st")

    def __init__(self, name: str, path: str, st: os.stat_result):
        self.name, self.path, self.st = name, path, st

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class _Lister:
    """One ls run: options, id-name caches and the output formatting."""

    def __init__(self, ctx, opts):
        self.ctx = ctx
        self.all = "a" in opts
        self.almost_all = "A" in opts
        self.long = "l" in opts or "n" in opts
        self.numeric_ids = "n" in opts
        self.human = "h" in opts
        self.recursive = "R" in opts and "d" not in opts
        self.directory = "d" in opts
        self.reverse = "r" in opts
        sort_keys = [k for k, _ in opts.items if k in "tS"]
        self.sort_by = sort_keys[-1] if sort_keys else None
        self.now_ns = time.time_ns()
        self.users: dict[int, str | None] = {}
        self.groups: dict[int, str | None] = {}
        self.dates: dict[tuple, str] = {}
        self.status = 0
        self.first_dir = True

    # -- sorting and filtering
    def sorted(self, entries: list[Entry]) -> list[Entry]:
        if self.sort_by == "t":
            key = lambda e: (-e.st.st_mtime_ns, os.fsencode(e.name))
        elif self.sort_by == "S":
            key = lambda e: (-e.st.st_size, os.fsencode(e.name))
        else:
            key = lambda e: os.fsencode(e.name)
        return sorted(entries, key=key, reverse=self.reverse)

    def read_dir(self, path: str) -> list[Entry]:
        entries = []
        with os.scandir(path) as listing:            # (each entry's path without a join per name)
            for d in listing:
                if d.name.startswith(".") and not (self.all or self.almost_all):
                    continue
                try:
                    entries.append(Entry(d.name, d.path, d.stat(follow_symlinks=False)))
                except OSError:
                    continue
        if self.all:
            for name in (".", ".."):
                full = os.path.join(path, name)
                try:
                    entries.append(Entry(name, full, os.lstat(full)))
                except OSError:
                    continue
        return self.sorted(entries)

    # -- output
    def write(self, text: str) -> None:
        self.ctx.out.write(os.fsencode(text))

    def print_entries(self, entries: list[Entry], also_measure=()) -> None:
        """Print *entries*; in long format the columns are as wide as needed
        for *entries* and *also_measure* (GNU measures all command-line
        operands, directories included)."""
        if not self.long:
            self.write("".join(e.name + "\n" for e in entries))
            return
        rows = [self.long_fields(e) for e in entries]
        measured = rows + [self.long_fields(e) for e in also_measure]
        widths = [max((len(r[i]) for r in measured if isinstance(r[i], str)), default=0)
                  for i in range(5)]
        devices = [r[4] for r in measured if isinstance(r[4], tuple)]
        major_w = max((len(d[0]) for d in devices), default=0)
        minor_w = max((len(d[1]) for d in devices), default=0)
        if devices:
            widths[4] = max(widths[4], major_w + 2 + minor_w)
        lines = []
        for mode, nlink, owner, group, size, date, name in rows:
            if isinstance(size, tuple):  # "major, minor" as GNU aligns it
                size = f"{size[0]:>{widths[4] - 2 - minor_w}}, {size[1]:>{minor_w}}"
            lines.append(f"{mode} {nlink:>{widths[1]}} {self.pad_id(owner, widths[2])} "
                         f"{self.pad_id(group, widths[3])} {size:>{widths[4]}} {date} {name}\n")
        self.write("".join(lines))

    @staticmethod
    def pad_id(text: str, width: int) -> str:
        """Names are left-aligned, numeric ids right-aligned (as GNU)."""
        return f"{text:>{width}}" if text.isdigit() else f"{text:<{width}}"

    def long_fields(self, e: Entry):
        st = e.st
        name = e.name
        if stat.S_ISLNK(st.st_mode):
            try:
                name += " -> " + os.readlink(e.path)
            except OSError:
                pass
        return (stat.filemode(st.st_mode), str(st.st_nlink),
                self.id_name(st.st_uid, self.users, pwd.getpwuid),
                self.id_name(st.st_gid, self.groups, grp.getgrgid),
                self.size_text(st), self.date_text(st.st_mtime_ns), name)

    def id_name(self, ident: int, cache: dict, lookup) -> str:
        if self.numeric_ids:
            return str(ident)
        if ident not in cache:
            try:
                cache[ident] = lookup(ident)[0]
            except KeyError:
                cache[ident] = str(ident)
        return cache[ident]

    def size_text(self, st):
        """Size column: text, or (major, minor) for device files."""
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            return str(os.major(st.st_rdev)), str(os.minor(st.st_rdev))
        return human_size(st.st_size) if self.human else str(st.st_size)

    def date_text(self, mtime_ns: int) -> str:
        recent = self.now_ns - SIX_MONTHS_NS < mtime_ns <= self.now_ns
        key = (mtime_ns // 10**9, recent)
        text = self.dates.get(key)               # files made together share their second
        if text is None:
            t = time.localtime(key[0])
            month_day = f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d}"
            text = f"{month_day} {t.tm_hour:02d}:{t.tm_min:02d}" if recent else f"{month_day}  {t.tm_year}"
            self.dates[key] = text
        return text

    def total_text(self, entries: list[Entry]) -> str:
        blocks = sum(e.st.st_blocks for e in entries)
        if self.human:
            return human_size(blocks * 512)
        return str((blocks * 512 + 1023) // 1024)

    # -- directories
    def list_dir(self, name: str, path: str, with_header: bool, command_line: bool) -> None:
        try:
            entries = self.read_dir(path)
        except OSError as exc:
            self.ctx.error(f"cannot open directory {quote(name)}: {strerror(exc)}")
            self.status = 2 if command_line else max(self.status, 1)
            return
        if with_header or self.recursive:
            self.write(("" if self.first_dir else "\n") + name + ":\n")
        self.first_dir = False
        if self.long:
            self.write(f"total {self.total_text(entries)}\n")
        self.print_entries(entries)
        if self.recursive:
            for e in entries:
                if e.is_dir and e.name not in (".", ".."):
                    self.list_dir(os.path.join(name, e.name), e.path, True, False)

    def operand(self, name: str):
        """Classify a command-line operand: (Entry, is_directory) or None."""
        path = self.ctx.path(name)
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.ctx.error(f"cannot access {quote(name)}: {strerror(exc)}")
            self.status = 2
            return None
        is_dir = stat.S_ISDIR(st.st_mode)
        if stat.S_ISLNK(st.st_mode) and not (self.long or self.directory):
            try:
                is_dir = stat.S_ISDIR(os.stat(path).st_mode)
            except OSError:
                pass
        return Entry(name, path, st), is_dir and not self.directory


@program("ls", "aAlhn1RdrtS", {"all": ("a", False), "almost-all": ("A", False),
                                "human-readable": ("h", False), "recursive": ("R", False),
                                "directory": ("d", False), "reverse": ("r", False),
                                "numeric-uid-gid": ("n", False),
                                "color": ("color", "optional")}, status=2)
def ls(ctx, opts, args) -> int:
    """List directory contents (one name per line, C-locale order)."""
    if "color" in opts and opts.get("color") not in ("never", "auto", "tty", "if-tty", "none", "no"):
        ctx.error(f"vos ls writes no colors: --color={opts.get('color') or 'always'}")
        return 2
    lister = _Lister(ctx, opts)
    files, dirs = [], []
    for name in args or ["."]:
        classified = lister.operand(name)
        if classified is not None:
            (dirs if classified[1] else files).append(classified[0])
    files, dirs = lister.sorted(files), lister.sorted(dirs)
    if files:
        lister.print_entries(files, also_measure=dirs)
        if dirs:
            lister.write("\n")
    with_header = len(args) > 1 or bool(files)
    for entry in dirs:
        lister.list_dir(entry.name, entry.path, with_header, True)
    return lister.status
