"""The vos shell built-ins compared byte for byte with GNU coreutils / grep.

Every case in the parametrised tables runs our program (argv, an
``io.BytesIO`` stdin, ``io.BytesIO`` stdout/stderr, cwd = a prepared tree)
and the real GNU tool (``LC_ALL=C``, ``TZ=UTC``, stdin and stdout pipes,
same cwd), and asserts identical stdout, stderr and exit status.  Further
tests check streaming behaviour: bounded reads, chunked readers, batched
writes and ``BrokenPipeError`` propagation.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import time
import tracemalloc

import pytest

from runtime.shell.programs import PROGRAMS, iter_lines
from runtime.shell.programs.ls import human_size

GNU_ENV = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
NOW = time.time()
OLD = 1577934245          # 2020-01-02 03:04:05 UTC
FUTURE = 4102444800 + 86400 * 40

TEXT = (b"hello world\nHello World\nfoo bar baz\n\n  indented line\nfoo\nfoo\n"
        b"tab\tseparated\tvalues\nnumbers 123 and 4567\nHELLO again\nlast line no newline")
WORDS = b"apple\nbanana\napple\nApple\ncherry\ncherry\ncherry\nbanana\n\n\ndate\n"
NUMS = (b"10\n9\n-3\n  42\n3.5\n3.50\nabc\n-0\n0\n+7\n1e3\n007\n.5\n-.5\n"
        b"100 apples\n 100 pears\n\n")
FIELDS = (b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
          b"nocolons here\nuser:x:1000:1000:User Name:/home/user:/bin/sh\n::\n")
TABLE = (b"b 2 zeta\na 10 alpha\nc  1 beta\nb 2 Alpha\n\ta 3 gamma\nB 20 delta\n"
         b"a 10 alpha\nd -5 eps\n")


def write(path, data: bytes, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A directory with varied names, sizes, dates and file types."""
    root = tmp_path_factory.mktemp("tree")
    recent = NOW - 3600
    write(root / "a.txt", TEXT, recent)
    write(root / "b.txt", b"second file\nfoo again\n", recent)
    write(root / "words", WORDS, recent)
    write(root / "nums", NUMS, recent)
    write(root / "fields", FIELDS, recent)
    write(root / "table", TABLE, recent)
    write(root / "space name.txt", b"spaced\n", recent)
    write(root / ".hidden", b"secret\n", recent)
    write(root / "Upper", b"U\n", OLD)
    write(root / "_under", b"_\n", FUTURE)
    write(root / "empty", b"", recent)
    write(root / "bin.dat", b"abc\x00def\nxyz abc\n\x01\x02\xff\n", recent)
    write(root / "big.dat", bytes(range(256)) * 20 + b"\n" * 3, OLD)
    write(root / "k1025", b"k" * 1025, recent)
    write(root / "run.sh", b"#!/bin/sh\necho hi\n", recent)
    os.chmod(root / "run.sh", 0o755)
    write(root / "subdir" / "inner.txt", b"inner foo\n", recent)
    write(root / "subdir" / ".dot", b"dot\n", recent)
    write(root / "subdir" / "deeper" / "leaf.txt", b"leaf\n", OLD)
    (root / "emptydir").mkdir()
    with open(root / "sparse", "wb") as f:
        f.truncate(12 * 1024 * 1024 + 1)
    os.symlink("a.txt", root / "link")
    os.symlink("nowhere", root / "broken")
    os.symlink("subdir", root / "dirlink")
    os.mkfifo(root / "pipe")
    for d in (root / "subdir" / "deeper", root / "subdir", root / "emptydir", root):
        os.utime(d, (recent, recent))
    return root


@pytest.fixture(autouse=True)
def utc():
    """Our programs use time.localtime: run them in UTC like the GNU tools."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def gnu_path(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        pytest.skip(f"GNU {name} not installed")
    return path


def run_gnu(argv, stdin: bytes, cwd) -> tuple[int, bytes, bytes]:
    proc = subprocess.run(argv, executable=gnu_path(argv[0]), input=stdin, cwd=cwd,
                          env=GNU_ENV, capture_output=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def run_ours(argv, stdin, cwd) -> tuple[int, bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()
    reader = io.BytesIO(stdin) if isinstance(stdin, bytes) else stdin
    status = PROGRAMS[argv[0]](list(argv), reader, out, err, str(cwd))
    return status, out.getvalue(), err.getvalue()


def check(argv, stdin: bytes, cwd) -> None:
    expected = run_gnu(argv, stdin, cwd)
    actual = run_ours(argv, stdin, cwd)
    assert actual[1] == expected[1], "stdout differs"
    assert actual[2] == expected[2], "stderr differs"
    assert actual[0] == expected[0], "exit status differs"


def cases(*items):
    """pytest params from (argv, stdin) pairs with readable ids."""
    return [pytest.param(argv, stdin, id=" ".join(argv) + (" <" + stdin[:8].decode("latin-1") if stdin else ""))
            for argv, stdin in items]


# ---------------------------------------------------------------- cases

CAT = cases(
    (["cat"], TEXT), (["cat", "a.txt"], b""), (["cat", "a.txt", "-", "b.txt"], WORDS),
    (["cat", "nofile"], b""), (["cat", "a.txt", "nofile", "b.txt"], b""),
    (["cat", "subdir"], b""), (["cat", "space name.txt", "no such"], b""),
    (["cat", "bin.dat", "big.dat"], b""), (["cat", "-n", "a.txt", "b.txt"], b""),
    (["cat", "-b", "words"], b""), (["cat", "-s", "words"], b""), (["cat", "-E", "a.txt"], b""),
    (["cat", "-T", "a.txt"], b""), (["cat", "-nE", "-"], TEXT), (["cat", "-x"], b""),
    (["cat", "--number", "b.txt"], b""), (["cat", "--bogus"], b""), (["cat", "empty"], b""),
    (["cat", "link"], b""), (["cat", "broken"], b""), (["cat", "--", "-"], b"dash\n"),
    (["cat", "-A", "bin.dat", "big.dat"], b""), (["cat", "-v"], b"\x00\x7f\x80\xff\t\n"),
    (["cat", "-et", "a.txt"], b""), (["cat", "-u", "b.txt"], b""),
)

GREP = cases(
    (["grep", "foo"], TEXT), (["grep", "foo", "a.txt"], b""), (["grep", "-i", "hello"], TEXT),
    (["grep", "-v", "foo"], TEXT), (["grep", "-c", "foo"], TEXT), (["grep", "-n", "o"], TEXT),
    (["grep", "-vc", "o"], TEXT), (["grep", "-vn", "o"], TEXT), (["grep", "-in", "HELLO"], TEXT),
    (["grep", "-w", "foo"], TEXT), (["grep", "-x", "foo"], TEXT), (["grep", "-wi", "hello"], TEXT),
    (["grep", "-E", "fo+|ba[rz]"], TEXT), (["grep", "fo\\+\\|ba[rz]"], TEXT),
    (["grep", "-F", "a.b"], b"a.b\naxb\n"), (["grep", "a.b"], b"a.b\naxb\n"),
    (["grep", "-F", "-x", "foo"], TEXT), (["grep", "-F", "-w", "line"], TEXT),
    (["grep", "[[:digit:]]\\{3\\}"], TEXT), (["grep", "-E", "[[:digit:]]{4}"], TEXT),
    (["grep", "^[[:upper:]]"], TEXT), (["grep", "[[:space:]]values$"], TEXT),
    (["grep", "-c", "[[:alpha:]]"], TEXT), (["grep", "[[:punct:]]"], b"a.b\nab\n!x\n"),
    (["grep", "[[:alnum:]]_"], b"a_\n__\n"), (["grep", "[[:lower:]][[:upper:]]"], b"aB\nAb\n"),
    (["grep", "^$"], TEXT), (["grep", "-c", "^"], TEXT), (["grep", "-c", ""], TEXT),
    (["grep", "-v", "^$"], WORDS), (["grep", "\\(foo\\).*\\1"], b"foo foo\nfoo bar\n"),
    (["grep", "-E", "(ab)\\1"], b"abab\nab\n"), (["grep", "a*b"], b"b\nab\nc\n"),
    (["grep", "*a"], b"*a\na\n"), (["grep", "^*a"], b"*a\na\n"), (["grep", "a+b"], b"a+b\naab\n"),
    (["grep", "a\\{2\\}"], b"a\naa\n"), (["grep", "-E", "a{2,}"], b"a\naa\naaa\n"),
    (["grep", "-E", "a{,1}b"], b"b\nab\n"), (["grep", "-E", "a{1"], b"a{1\na\n"),
    (["grep", "-E", "a**"], b"x\n"), (["grep", "x\\{1\\}\\{2\\}"], b"x\nxx\n"),
    (["grep", "-E", "*a"], b"xa\n"), (["grep", "-E", "a|+b"], b"b\n"),
    (["grep", "(a)"], b"(a)\na\n"), (["grep", "-E", "(a)"], b"(a)\na\n"),
    (["grep", "-E", "a)"], b"a)\na\n"), (["grep", "a|b"], b"a|b\na\n"),
    (["grep", "[]x]"], b"]\nx\ny\n"), (["grep", "[^]x]"], b"]\nx\ny\n"), (["grep", "[a-]"], b"-\nb\n"),
    (["grep", "[\\]"], b"\\\nn\n"), (["grep", "\\<foo\\>"], b"foo\nfoobar\n(foo)\n"),
    (["grep", "\\bbar"], TEXT), (["grep", "\\w\\W\\w"], TEXT), (["grep", "\\s"], TEXT),
    (["grep", "-c", "\\S"], TEXT), (["grep", "a\\.b"], b"a.b\naxb\n"), (["grep", "x$y"], b"x$y\n"),
    (["grep", "x^y"], b"x^y\n"), (["grep", "-i", "[a-c]x"], b"Bx\nbx\ndx\n"),
    (["grep", "-i", "[^a]"], b"A\na\n"), (["grep", "-e", "foo", "-e", "bar"], TEXT),
    (["grep", "foo\nworld"], TEXT), (["grep", "-l", "foo", "a.txt", "b.txt", "words"], b""),
    (["grep", "-L", "foo", "a.txt", "b.txt", "words"], b""), (["grep", "-l", "foo"], TEXT),
    (["grep", "foo", "a.txt", "b.txt"], b""), (["grep", "-c", "foo", "a.txt", "b.txt", "-"], TEXT),
    (["grep", "-n", "foo", "a.txt", "b.txt"], b""), (["grep", "-h", "foo", "a.txt", "b.txt"], b""),
    (["grep", "-H", "foo", "a.txt"], b""), (["grep", "-q", "foo", "a.txt"], b""),
    (["grep", "-q", "nomatch", "a.txt"], b""), (["grep", "foo", "nofile"], b""),
    (["grep", "foo", "nofile", "a.txt"], b""), (["grep", "-q", "foo", "nofile", "a.txt"], b""),
    (["grep", "-s", "foo", "nofile"], b""), (["grep", "foo", "subdir"], b""),
    (["grep", "abc", "bin.dat"], b""), (["grep", "-c", "abc", "bin.dat"], b""),
    (["grep", "-n", "xyz"], b"one\ntwo xyz\n\x00three xyz\n"), (["grep", "-l", "abc", "bin.dat"], b""),
    (["grep", "-v", "zzz", "bin.dat"], b""), (["grep", "nomatch", "bin.dat"], b""),
    (["grep", "-c", "a"], b"a\x00a\n"), (["grep", "-m", "2", "foo"], TEXT),
    (["grep", "-m1", "-c", "o"], TEXT), (["grep", "-f", "words", "a.txt"], b""),
    (["grep", "-x", "-e", ""], WORDS), (["grep"], b""), (["grep", "-Q", "x"], b""),
    (["grep", "--bogus", "x"], b""), (["grep", "-E", "-F", "x"], b""), (["grep", "\\("], b""),
    (["grep", "\\)"], b""), (["grep", "-E", "("], b""), (["grep", "["], b""), (["grep", "[a"], b""),
    (["grep", "[[:foo:]]"], b""), (["grep", "[:digit:]"], b""), (["grep", "a\\{1"], b""),
    (["grep", "a\\{1,x\\}"], b""), (["grep", "a\\{2,1\\}"], b""), (["grep", "\\1"], b""),
    (["grep", "[z-a]"], b""), (["grep", "a\\"], b""), (["grep", "-e"], b""),
    (["grep", "--count", "--ignore-case", "FOO"], TEXT), (["grep", "-c", "line"], TEXT),
    (["grep", "foo", "-", "a.txt"], b"foo from stdin\n"), (["grep", "no newline"], TEXT),
    (["grep", "-c", "foo", "subdir", "a.txt"], b""), (["grep", "-L", "foo", "subdir", "a.txt"], b""),
    (["grep", "-v", ""], TEXT), (["grep", "-c", "-v", ""], TEXT), (["grep", "-v", "-f", "empty"], TEXT),
    (["grep", "-f", "empty"], TEXT), (["grep", "-m0", "foo", "nofile"], b""), (["grep", "-w", ""], TEXT),
    (["grep", "-q", "-c", "foo"], TEXT), (["grep", "-l", "-c", "foo", "a.txt", "b.txt"], b""),
    (["grep", "--color=never", "foo"], TEXT), (["grep", "-E", "(a\\b?)"], b""),
    (["grep", "-E", "a{}"], b""), (["grep", "-E", "a{,}b"], b"b\nab\n"), (["grep", "\\<*a"], b"*a\na\n"),
    (["grep", "-E", "\\>{1,2}\\b+$"], TEXT), (["grep", "-n", "^", "-", "a.txt"], WORDS),
)

WC = cases(
    (["wc"], TEXT), (["wc", "-l"], TEXT), (["wc", "-w"], TEXT), (["wc", "-c"], TEXT),
    (["wc", "-lw"], TEXT), (["wc", "-l", "-c"], TEXT), (["wc", "a.txt"], b""),
    (["wc", "-l", "a.txt"], b""), (["wc", "a.txt", "b.txt"], b""),
    (["wc", "-c", "a.txt", "big.dat"], b""), (["wc", "a.txt", "-"], TEXT),
    (["wc", "-"], TEXT), (["wc", "-l", "-"], TEXT), (["wc", "nofile"], b""),
    (["wc", "nofile", "a.txt"], b""), (["wc", "a.txt", "nofile"], b""), (["wc", "subdir"], b""),
    (["wc", "-l", "subdir", "a.txt"], b""), (["wc", "bin.dat"], b""), (["wc", "empty"], b""),
    (["wc"], b""), (["wc"], b"a\x01b \x01 \x80 c\x7f\n\x00\n"), (["wc", "-w"], b"one\vtwo\fthree\rfour"),
    (["wc", "-m"], TEXT), (["wc", "--lines", "--words"], TEXT), (["wc", "-x"], b""),
    (["wc", "sparse", "a.txt"], b""), (["wc", "-l", "space name.txt"], b""),
)

HEAD_TAIL = cases(
    (["head"], TEXT), (["head", "-n", "3"], TEXT), (["head", "-n3"], TEXT), (["head", "-3"], TEXT),
    (["head", "-n", "0"], TEXT), (["head", "-n", "100"], TEXT), (["head", "-c", "5"], TEXT),
    (["head", "-n", "-2"], TEXT), (["head", "-n", "-20"], TEXT), (["head", "-c", "-5"], TEXT),
    (["head", "-n", "2", "a.txt", "b.txt"], b""), (["head", "-q", "-n1", "a.txt", "b.txt"], b""),
    (["head", "-v", "-n1", "a.txt"], b""), (["head", "-n1", "a.txt", "-"], WORDS),
    (["head", "nofile"], b""), (["head", "-n1", "a.txt", "nofile", "b.txt"], b""),
    (["head", "subdir"], b""), (["head", "-n", "x"], b""), (["head", "-n", "-x"], b""),
    (["head", "-c", "x"], b""), (["head", "-n"], b""), (["head", "-Z"], b""),
    (["head", "-n", "2"], b"a\nb"), (["head", "-n", "-1"], b"a\nb"), (["head", "--lines=2"], TEXT),
    (["tail"], TEXT), (["tail", "-n", "3"], TEXT), (["tail", "-3"], TEXT), (["tail", "-n", "0"], TEXT),
    (["tail", "-n", "+3"], TEXT), (["tail", "+3"], TEXT), (["tail", "-n", "+0"], TEXT),
    (["tail", "-n", "+100"], TEXT), (["tail", "-c", "7"], TEXT), (["tail", "-c", "+7"], TEXT),
    (["tail", "-n", "1"], b"a\nb\n"), (["tail", "-n", "1"], b"a\nb"), (["tail", "-n", "5"], b""),
    (["tail", "-n", "2", "a.txt", "b.txt"], b""), (["tail", "-q", "-n1", "a.txt", "b.txt"], b""),
    (["tail", "nofile"], b""), (["tail", "subdir"], b""), (["tail", "-n", "x"], b""),
    (["tail", "-n", "+x"], b""), (["tail", "-n1", "-", "b.txt"], WORDS), (["tail", "-c", "0"], TEXT),
    (["tail", "-n", "2", "big.dat"], b""), (["tail", "-c", "300", "big.dat"], b""),
)

SORT = cases(
    (["sort"], TEXT), (["sort"], WORDS), (["sort", "-r"], WORDS), (["sort", "-u"], WORDS),
    (["sort", "-f"], WORDS), (["sort", "-fu"], WORDS), (["sort", "-n"], NUMS), (["sort", "-nr"], NUMS),
    (["sort", "-nu"], NUMS), (["sort", "-k2"], TABLE), (["sort", "-k2,2"], TABLE),
    (["sort", "-k2n"], TABLE), (["sort", "-k2,2n"], TABLE), (["sort", "-n", "-k2,2"], TABLE),
    (["sort", "-k2,2nr"], TABLE), (["sort", "-k1,1", "-k3r"], TABLE), (["sort", "-k3"], TABLE),
    (["sort", "-b", "-k2"], TABLE), (["sort", "-k2b"], TABLE), (["sort", "-k1.2"], TABLE),
    (["sort", "-k1,1.1"], TABLE), (["sort", "-k3.2,3.3"], TABLE), (["sort", "-s", "-k1,1"], TABLE),
    (["sort", "-u", "-k1,1"], TABLE), (["sort", "-r", "-k1,1"], TABLE), (["sort", "-k1,1r"], TABLE),
    (["sort", "-t", ":", "-k3n"], FIELDS), (["sort", "-t:", "-k3,3n", "-r"], FIELDS),
    (["sort", "-t:", "-k5"], FIELDS), (["sort", "-t", ":", "-k2,2", "-k1"], FIELDS),
    (["sort", "-t:", "-k6.2,6.4"], FIELDS), (["sort", "-k2,1"], TABLE), (["sort", "-k5"], TABLE),
    (["sort", "a.txt", "b.txt"], b""), (["sort", "-", "words"], WORDS), (["sort", "nofile"], b""),
    (["sort", "subdir"], b""), (["sort", "-k0"], b""), (["sort", "-k1.0"], b""),
    (["sort", "-t", "ab"], b""), (["sort", "-k2x"], b""), (["sort", "-x"], b""),
    (["sort"], b""), (["sort"], b"b\na"), (["sort", "-n"], b"2\n10\n1\n"),
    (["sort", "-rn"], b"1\n1\n01\n1.0\n"), (["sort", "bin.dat"], b""),
    (["sort", "--reverse", "--numeric-sort"], NUMS), (["sort", "-k", "2"], TABLE),
)

UNIQ = cases(
    (["uniq"], WORDS), (["uniq", "-c"], WORDS), (["uniq", "-d"], WORDS), (["uniq", "-u"], WORDS),
    (["uniq", "-i"], WORDS), (["uniq", "-ic"], WORDS), (["uniq", "-cd"], WORDS),
    (["uniq", "-du"], WORDS), (["uniq", "words"], b""), (["uniq", "-c", "-"], b"a\na\nb"),
    (["uniq", "nofile"], b""), (["uniq", "subdir"], b""), (["uniq", "a", "b", "c"], b""),
    (["uniq", "-x"], b""), (["uniq"], b""), (["uniq"], b"x\nx"), (["uniq", "--count"], TEXT),
)

TR = cases(
    (["tr", "a-z", "A-Z"], TEXT), (["tr", "[:lower:]", "[:upper:]"], TEXT),
    (["tr", "[:upper:]", "[:lower:]"], TEXT), (["tr", "-d", "aeiou"], TEXT),
    (["tr", "-d", "[:digit:]"], TEXT), (["tr", "-s", " "], b"a   b    c\n\n\n"),
    (["tr", "-s", "\\n"], WORDS), (["tr", "-s", "a-z", "A-Z"], b"aabbcc  dd\n"),
    (["tr", "-ds", "a", "b"], b"abbbacccbb\n"), (["tr", "-cd", "a-z\\n"], TEXT),
    (["tr", "-c", "a-z", "_"], b"ab-cd ef\n"), (["tr", "abc", "x"], b"aabbcc\n"),
    (["tr", "abc", "xyz"], b"cab\n"), (["tr", "\\t", " "], TEXT), (["tr", "\\\\", "/"], b"a\\b\n"),
    (["tr", "\\n", " "], WORDS), (["tr", "[:space:]", "_"], TEXT), (["tr", "-d", "[:space:]"], TEXT),
    (["tr", "[:alpha:]", "x"], TEXT), (["tr", "-d", "\\012"], WORDS), (["tr", "a-c", "[x*]"], b"abcd\n"),
    (["tr", "a-e", "[x*2]yz"], b"abcde\n"), (["tr", "-s", "[:alpha:]"], b"aabbbccdd  x\n"),
    (["tr"], b""), (["tr", "a"], b""), (["tr", "-d"], b""), (["tr", "a", "b", "c"], b""),
    (["tr", "-d", "a", "b"], b""), (["tr", "-ds", "a"], b""), (["tr", "c-a", "x"], b""),
    (["tr", "[:upper:]", "[:digit:]"], b""), (["tr", "a", ""], b"a\n"), (["tr", "-x", "a"], b""),
    (["tr", "[:nope:]", "x"], b""), (["tr", "-s", "ab"], b"aaabbbab\n" * 3),
)

CUT = cases(
    (["cut", "-d:", "-f1"], FIELDS), (["cut", "-d", ":", "-f", "1,3"], FIELDS),
    (["cut", "-d:", "-f2-"], FIELDS), (["cut", "-d:", "-f-2"], FIELDS),
    (["cut", "-d:", "-f3-4,1"], FIELDS), (["cut", "-d:", "-f6,1-2,7-"], FIELDS),
    (["cut", "-d:", "-f1", "-s"], FIELDS), (["cut", "-f2"], TEXT), (["cut", "-f1-2", "-s"], TEXT),
    (["cut", "-c1-3"], TEXT), (["cut", "-c2,4-"], TEXT), (["cut", "-c-2,5"], TEXT),
    (["cut", "-b", "3"], TEXT), (["cut", "-c", "1-2,2-4"], TEXT), (["cut", "-d:", "-f9"], FIELDS),
    (["cut", "-d:", "--complement", "-f2"], FIELDS), (["cut", "--complement", "-c2-3"], TEXT),
    (["cut", "-d:", "-f1,3", "--output-delimiter=|"], FIELDS),
    (["cut", "-c1,5", "--output-delimiter=:"], b"abc\nabcdef\n"), (["cut", "-c2", "fields", "-"], WORDS),
    (["cut", "-f1", "nofile"], b""), (["cut", "-c1", "subdir"], b""), (["cut"], b""),
    (["cut", "-f", "x"], b""), (["cut", "-c", "x"], b""), (["cut", "-f", "0"], b""),
    (["cut", "-c", "0"], b""), (["cut", "-f", "3-1"], b""), (["cut", "-f", "-"], b""),
    (["cut", "-f", "1-x"], b""), (["cut", "-f", "1,,2"], b""), (["cut", "-f", "1-2-3"], b""),
    (["cut", "-d", "ab", "-f1"], b""), (["cut", "-c1", "-f1"], b""), (["cut", "-c1", "-d:"], b""),
    (["cut", "-c1", "-s"], b""), (["cut", "-x"], b""), (["cut", "-d:", "-f2"], b"a:b"),
)

SEQ = cases(
    (["seq", "5"], b""), (["seq", "2", "5"], b""), (["seq", "1", "3", "10"], b""),
    (["seq", "5", "1"], b""), (["seq", "10", "-3", "1"], b""), (["seq", "-3", "3"], b""),
    (["seq", "0"], b""), (["seq", "-w", "8", "11"], b""), (["seq", "-w", "-3", "2"], b""),
    (["seq", "-w", "1", "3", "100"], b""), (["seq", "-s", ",", "5"], b""), (["seq", "-s", ", ", "3"], b""),
    (["seq", "-s", ":", "1", "0"], b""), (["seq", "0", "0.5", "2"], b""), (["seq", "1.5", "4"], b""),
    (["seq", "-w", "0", "0.25", "1"], b""), (["seq", "1", "0.1", "1.3"], b""),
    (["seq"], b""), (["seq", "1", "2", "3", "4"], b""), (["seq", "a"], b""), (["seq", "1", "0", "3"], b""),
    (["seq", "-x"], b""), (["seq", "3", "-1", "1"], b""), (["seq", "-5"], b""), (["seq", "-s"], b""),
    (["seq", "1", "10000"], b""), (["seq", "--separator=;", "3"], b""),
)

ECHO_ETC = cases(
    (["echo"], b""), (["echo", "hello", "world"], b""), (["echo", "-n", "x"], b""),
    (["echo", "-e", "a\\tb\\nc\\x41\\101\\0102\\\\"], b""), (["echo", "-e", "x\\cy", "z"], b""),
    (["echo", "-E", "a\\tb"], b""), (["echo", "a\\tb"], b""), (["echo", "-ne", "q\\n"], b""),
    (["echo", "-x", "y"], b""), (["echo", "-nx"], b""), (["echo", "--", "-n"], b""),
    (["echo", "-e", "\\q\\"], b""), (["echo", "-n", "-e", "-n"], b""),
    (["true"], b""), (["true", "x", "-y"], b""), (["false"], b""), (["false", "x"], b""),
    (["yes", "-x"], b""), (["yes", "--bogus"], b""),
)

LS = cases(
    (["ls"], b""), (["ls", "-a"], b""), (["ls", "-A"], b""), (["ls", "-1"], b""), (["ls", "-l"], b""),
    (["ls", "-la"], b""), (["ls", "-lah"], b""), (["ls", "-lh"], b""), (["ls", "-l", "-h", "-a"], b""),
    (["ls", "-R"], b""), (["ls", "-Ra"], b""), (["ls", "-lR"], b""), (["ls", "-laR"], b""),
    (["ls", "subdir"], b""), (["ls", "-a", "subdir"], b""), (["ls", "-l", "subdir"], b""),
    (["ls", "a.txt"], b""), (["ls", "-l", "a.txt"], b""), (["ls", "-l", "a.txt", "b.txt", "k1025"], b""),
    (["ls", "a.txt", "subdir"], b""), (["ls", "subdir", "emptydir"], b""),
    (["ls", "-l", "subdir", "a.txt", "emptydir"], b""), (["ls", "-R", "subdir", "a.txt"], b""),
    (["ls", "nofile"], b""), (["ls", "nofile", "subdir"], b""), (["ls", "a.txt", "nofile"], b""),
    (["ls", "-l", "nofile", "link"], b""), (["ls", "no file"], b""), (["ls", "it's"], b""),
    (["ls", "link", "broken"], b""), (["ls", "-l", "link", "broken", "dirlink"], b""),
    (["ls", "dirlink"], b""), (["ls", "-l", "dirlink"], b""), (["ls", "-d", "subdir", "dirlink"], b""),
    (["ls", "-ld", "subdir"], b""), (["ls", "-d"], b""), (["ls", "-r"], b""), (["ls", "-lt"], b""),
    (["ls", "-ltr"], b""), (["ls", "-S"], b""), (["ls", "-lSh"], b""), (["ls", "-n"], b""),
    (["ls", "-lh", "sparse", "big.dat", "k1025", "empty"], b""), (["ls", "emptydir"], b""),
    (["ls", "-l", "emptydir"], b""), (["ls", "-la", "emptydir"], b""), (["ls", "-j"], b""),
    (["ls", "--bogus"], b""), (["ls", "."], b""), (["ls", "-R", "."], b""), (["ls", "subdir/"], b""),
    (["ls", "-R", "subdir/"], b""), (["ls", "./subdir", "subdir/deeper"], b""),
    (["ls", "--all", "--recursive", "subdir"], b""), (["ls", "--color=never", "subdir"], b""),
    (["ls", "-l", "/dev/null", "/dev/zero", "/dev/full", "subdir"], b""),
    (["ls", "-lh", "/dev/null", "a.txt"], b""),
)

ALL_CASES = CAT + GREP + WC + HEAD_TAIL + SORT + UNIQ + TR + CUT + SEQ + ECHO_ETC + LS


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv, stdin", ALL_CASES)
def test_matches_gnu(argv, stdin, tree):
    check(argv, stdin, tree)


# ---------------------------------------------------------------- tee

@pytest.mark.parametrize("flags", [[], ["-a"]])
def test_tee_matches_gnu(tmp_path, flags):
    results = []
    for who in ("gnu", "ours"):
        d = tmp_path / who
        d.mkdir()
        (d / "existing").write_bytes(b"old\n")
        argv = ["tee", *flags, "existing", "new", "missing/x"]
        run = run_gnu if who == "gnu" else run_ours
        results.append((run(argv, TEXT, d), (d / "existing").read_bytes(), (d / "new").read_bytes()))
    assert results[0] == results[1]


def test_tee_invalid_option(tree):
    check(["tee", "-x"], b"", tree)


# ---------------------------------------------------------------- streams

class ChunkedReader:
    """A reader returning at most *max_chunk* bytes (random sizes) per read,
    and counting what it returned."""

    def __init__(self, data: bytes, max_chunk: int = 4096, seed: int = 1):
        self.data, self.pos, self.max = data, 0, max_chunk
        self.rng = random.Random(seed)
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        size = self.rng.randint(1, self.max)
        if n >= 0:
            size = min(size, n)
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk


class InfiniteReader:
    """An endless stream of lines; records how many bytes were read."""

    def __init__(self, line: bytes = b"line of text\n"):
        self.block = line * 5000
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        assert n > 0, "reading an infinite stream to its end"
        chunk = self.block[:n]
        self.consumed += len(chunk)
        return chunk


class RecordingWriter:
    """Collects output; records write sizes; may raise BrokenPipeError
    once *limit* bytes have been written."""

    def __init__(self, limit: int | None = None, keep: bool = True):
        self.limit, self.keep = limit, keep
        self.data = bytearray()
        self.total = 0
        self.sizes: list[int] = []

    def write(self, data: bytes) -> None:
        if self.limit is not None and self.total >= self.limit:
            raise BrokenPipeError(32, "Broken pipe")
        self.sizes.append(len(data))
        self.total += len(data)
        if self.keep:
            self.data += data


def big_text(size: int) -> bytes:
    rng = random.Random(42)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"needle", b"x" * 30, b"", b"\t"]
    lines, total = [], 0
    while total < size:
        line = b" ".join(rng.choice(words) for _ in range(rng.randint(0, 12))) + b"\n"
        lines.append(line)
        total += len(line)
    return b"".join(lines)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    data = big_text(20 * 1024 * 1024)
    path = tmp_path_factory.mktemp("big") / "big.txt"
    path.write_bytes(data)
    return data, path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv", [["cat"], ["wc"], ["wc", "-l"], ["wc", "-c"], ["grep", "-c", "needle"],
                                  ["grep", "needle"], ["grep", "-vc", "a"], ["grep", "-n", "gamma delta"],
                                  ["tail", "-n", "3"], ["head", "-n", "100000"], ["uniq", "-c"],
                                  ["cut", "-c", "3-9"], ["tr", "a-z", "A-Z"]],
                         ids=" ".join)
def test_large_chunked_input(argv, big):
    data, path = big
    expected = run_gnu(argv, data, path.parent)
    reader = ChunkedReader(data, max_chunk=65536)
    out, err = RecordingWriter(), io.BytesIO()
    status = PROGRAMS[argv[0]](list(argv), reader, out, err, str(path.parent))
    assert (status, bytes(out.data), err.getvalue()) == expected
    assert max(out.sizes, default=0) <= 1 << 20, "writes must be chunked"
    if len(out.data) > 1 << 20:
        assert len(out.sizes) < len(out.data) // 1024, "writes must be batched"


def test_large_file_argument(big):
    data, path = big
    for argv in (["wc", str(path)], ["grep", "-c", "beta", str(path)], ["cat", str(path)]):
        assert run_ours(argv, b"", path.parent) == run_gnu(argv, b"", path.parent)


@pytest.mark.parametrize("argv", [["cat"], ["grep", "alpha"], ["grep", "-v", "alpha"], ["tr", "a", "b"],
                                  ["cut", "-c1-5"], ["uniq"], ["wc"], ["head", "-n", "1000000"],
                                  ["tee"]], ids=" ".join)
def test_streaming_memory_is_bounded(argv):
    """Streaming programs hold about one chunk, never the whole input."""
    data = big_text(8 * 1024 * 1024)
    reader = ChunkedReader(data, max_chunk=1 << 18)
    out = RecordingWriter(keep=False)
    tracemalloc.start()
    try:
        status = PROGRAMS[argv[0]](list(argv), reader, out, io.BytesIO(), "/")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 0
    assert peak < 3 * 1024 * 1024, f"peak memory {peak} bytes"


def test_binary_data_through_cat_unchanged():
    data = bytes(range(256)) * 4096 + b"\x00\xff no newline"
    status, out, err = run_ours(["cat"], ChunkedReader(data, 10000), "/")
    assert (status, out, err) == (0, data, b"")


@pytest.mark.parametrize("argv, expected", [
    (["head", "-n", "3"], b"line of text\n" * 3), (["head", "-c", "5"], b"line "),
    (["grep", "-m", "2", "text"], b"line of text\n" * 2), (["grep", "-q", "text"], b""),
    (["tail", "-n", "+3"], None), (["cat"], None),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_stops_reading_infinite_input(argv, expected):
    reader = InfiniteReader()
    if expected is None:  # streams forever: ends when the consumer goes away
        out = RecordingWriter(limit=1 << 20, keep=False)
        with pytest.raises(BrokenPipeError):
            PROGRAMS[argv[0]](list(argv), reader, out, io.BytesIO(), "/")
        assert reader.consumed < 4 << 20
        return
    status, out, err = run_ours(argv, reader, "/")
    assert (status, out, err) == (0, expected, b"")
    assert reader.consumed <= 1 << 20


@pytest.mark.parametrize("argv", [["yes"], ["yes", "hello", "there"], ["seq", "1000000000"]],
                         ids=" ".join)
def test_endless_output_ends_on_broken_pipe(argv):
    out = RecordingWriter(limit=300_000)
    start = time.monotonic()
    with pytest.raises(BrokenPipeError):
        PROGRAMS[argv[0]](list(argv), io.BytesIO(), out, io.BytesIO(), "/")
    assert time.monotonic() - start < 5
    assert len(out.sizes) < 50, "output must be written in big chunks"
    if argv[0] == "yes":
        line = (" ".join(argv[1:]) or "y").encode() + b"\n"
        assert bytes(out.data) == line * (len(out.data) // len(line))


def test_yes_head_pipeline_is_fast():
    out = RecordingWriter(limit=1)
    with pytest.raises(BrokenPipeError):
        PROGRAMS["yes"](["yes"], io.BytesIO(), out, io.BytesIO(), "/")
    assert out.data.startswith(b"y\ny\n") and len(out.data) >= 4096


def test_usage_errors_do_not_touch_stdout():
    for name in PROGRAMS:
        if name in ("echo", "true", "false"):
            continue
        status, out, err = run_ours([name, "-\x07"], b"", "/")
        assert out == b""
        assert status == (2 if name in ("grep", "ls", "sort") else 1)
        assert f"{name}: invalid option -- '\x07'".encode() in err


# ---------------------------------------------------------------- helpers

@pytest.mark.parametrize("data", [b"", b"a", b"a\n", b"a\nb", b"a\n\nb\n", b"\n\n", b"x" * 100 + b"\ny"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 65536])
def test_iter_lines(data, chunk):
    assert list(iter_lines(ChunkedReader(data, chunk), chunk)) == data.splitlines(keepends=True)


def test_programs_registry():
    expected = {"ls", "cat", "grep", "wc", "head", "tail", "sort", "uniq", "tr", "cut", "seq",
                "yes", "echo", "tee", "true", "false"}
    assert expected <= set(PROGRAMS)
    assert all(callable(p) for p in PROGRAMS.values())


@pytest.mark.parametrize("size, text", [
    (0, "0"), (1023, "1023"), (1024, "1.0K"), (1025, "1.1K"), (4096, "4.0K"), (10239, "10K"),
    (10240, "10K"), (10241, "11K"), (1048575, "1.0M"), (1048576, "1.0M"),
    (12 * 1024 * 1024 + 1, "13M"), (1024 ** 3 * 5 // 2, "2.5G"),
])
def test_human_size(size, text):
    assert human_size(size) == text


def test_human_size_matches_gnu(tmp_path):
    sizes = [0, 1, 999, 1000, 1023, 1024, 1025, 1535, 1536, 1537, 9215, 9216, 10239, 10240,
             10241, 102399, 1048575, 1048577, 10 * 1048576 - 1, 1024 ** 3 + 1]
    for size in sizes:
        with open(tmp_path / f"s{size:012d}", "wb") as f:
            f.truncate(size)
    check(["ls", "-lh"], b"", tmp_path)


# ---------------------------------------------------------------- random differential tests

class RandomCases:
    """Generators of random (argv, stdin) cases for one program each."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def data(self, alphabet: str = " \tab:1-.Bz0", lines: int = 12) -> bytes:
        rng = self.rng
        return b"".join("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))).encode() + b"\n"
                        for _ in range(rng.randint(0, lines)))

    def sort(self):
        rng, keys = self.rng, []
        for _ in range(rng.randint(0, 2)):
            key = str(rng.randint(1, 3)) + ("." + str(rng.randint(1, 3)) if rng.random() < .3 else "")
            key += "".join(rng.sample("bnrf", rng.randint(0, 2)))
            if rng.random() < .6:
                key += "," + str(rng.randint(1, 4)) + ("." + str(rng.randint(0, 3)) if rng.random() < .3 else "")
                key += "".join(rng.sample("bnrf", rng.randint(0, 1)))
            keys += ["-k", key]
        flags = rng.sample(["-n", "-r", "-u", "-f", "-b", "-s"], rng.randint(0, 3))
        tab = ["-t", ":"] if rng.random() < .3 else []
        alphabet = rng.choice([" \tab:1-.Bz0", " -.0123456789ab\t:", "0123456789.-+ "])
        return ["sort", *flags, *tab, *keys], self.data(alphabet, 20)

    def grep(self):
        rng = self.rng
        ere = rng.random() < .5
        atoms = ["a", "b", ".", "[ab]", "[^a]", "[[:digit:]]", "[[:space:]]", "x", "\\w", "\\W",
                 "1", ":", "\\<", "\\>", "\\b", "[[:upper:]]", "[a-c]"]

        def quantifier():
            q = rng.choice(["", "", "*", "+", "?", "{1,2}", "{2}", "{,1}"])
            if ere or q in ("", "*"):
                return q
            return "\\" + q if q[0] != "{" else "\\" + q[:-1] + "\\}"

        def expr(depth):
            parts = []
            for _ in range(rng.randint(1, 3)):
                atom = rng.choice(atoms)
                if depth < 2 and rng.random() < .2:
                    inner = expr(depth + 1)
                    atom = f"({inner})" if ere else f"\\({inner}\\)"
                parts.append(atom + quantifier())
            text = "".join(parts)
            if rng.random() < .2:
                text += ("|" if ere else "\\|") + expr(depth + 1)
            return text

        pattern = ("^" if rng.random() < .2 else "") + expr(0) + ("$" if rng.random() < .2 else "")
        flags = rng.sample(["-i", "-v", "-c", "-n", "-w", "-x"], rng.randint(0, 2))
        return ["grep", *(["-E"] if ere else []), *flags, "-e", pattern], self.data(" \tab:1-.Bz0xA", 15)

    def grep_files(self):
        rng = self.rng
        flags = rng.sample(["-i", "-v", "-c", "-n", "-w", "-x", "-F", "-l", "-L", "-h", "-H", "-m1", "-q", "-s"],
                           rng.randint(0, 3))
        files = rng.sample(["a.txt", "b.txt", "-", "nofile", "bin.dat", "words", "subdir"], rng.randint(0, 3))
        pattern = rng.choice(["a", "ab", "a.b", "A", "foo", "", "1-", "zz", "o"])
        return ["grep", *flags, "-e", pattern, *files], self.data(" \tab:1-.Bz0A", 10)

    def tr(self):
        rng = self.rng
        sets = ["a-z", "A-Z", "[:upper:]", "[:lower:]", "[:digit:]", "[:space:]", "ab", "\\n", "a",
                "x-z", ":.", "[:alpha:]", "0-9"]
        set1 = "".join(rng.sample(sets, rng.randint(1, 2)))
        set2 = "".join(rng.sample(["A-Z", "xy", "_", "[:upper:]", "[:lower:]", "Q", "a-c"], rng.randint(1, 2)))
        mode = rng.choice([[set1, set2], ["-d", set1], ["-s", set1], ["-ds", set1, set2], ["-cd", set1],
                           ["-s", set1, set2], ["-cs", set1, set2], ["-c", set1, "_"]])
        return ["tr", *mode], self.data(" \tab:1-.Bz0xyzZ")

    def cut(self):
        rng, items = self.rng, []
        for _ in range(rng.randint(1, 3)):
            lo = rng.randint(1, 5)
            hi = rng.randint(lo, 7)
            items.append(rng.choice([str(lo), f"{lo}-{hi}", f"{lo}-", f"-{hi}"]))
        mode = rng.choice(["-f", "-c", "-b"])
        argv = ["cut", mode, ",".join(items)]
        if mode == "-f":
            argv += rng.choice([[], ["-d:"], ["-d", " "]]) + rng.choice([[], ["-s"]])
        argv += rng.choice([[], ["--complement"], ["--output-delimiter=#"]])
        return argv, self.data()

    def wc(self):
        rng = self.rng
        data = bytes(rng.randrange(256) if rng.random() < .3 else rng.choice(b" \n\tab")
                     for _ in range(rng.randint(0, 60)))
        return ["wc", *rng.sample(["-l", "-w", "-c"], rng.randint(0, 2))], data

    def uniq(self):
        return ["uniq", *self.rng.sample(["-c", "-d", "-u", "-i"], self.rng.randint(0, 2))], self.data("aAb\n", 20)

    def seq(self):
        rng = self.rng
        nums = [str(rng.randint(-5, 15)) for _ in range(rng.randint(1, 3))]
        if rng.random() < .3:
            nums = [n + "." + str(rng.randint(0, 99)) for n in nums]
        return ["seq", *rng.sample(["-w", "-s,"], rng.randint(0, 2)), *nums], b""

    def head_tail(self):
        rng = self.rng
        prog = rng.choice(["head", "tail"])
        value = str(rng.randint(0, 8))
        if rng.random() < .4:
            value = rng.choice(["-", "+"] if prog == "tail" else ["-"]) + value
        return [prog, rng.choice(["-n", "-c"]), value], self.data()

    def echo(self):
        rng = self.rng
        parts = ["\\\\", "\\n", "\\t", "\\x4", "\\x41g", "\\0", "\\012", "\\1234", "\\c", "a", " ",
                 "-n", "-e", "\\z", "\\8", "\\e", "\\a"]
        args = ["".join(rng.choice(parts) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(0, 3))]
        return ["echo", *rng.sample(["-e", "-n", "-E", "-ne"], rng.randint(0, 2)), *args], b""


RANDOM_KINDS = ["sort", "grep", "grep_files", "tr", "cut", "wc", "uniq", "seq", "head_tail", "echo"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_random_cases_match_gnu(kind, seed, tree):
    generator = getattr(RandomCases(seed * 1000 + RANDOM_KINDS.index(kind)), kind)
    for _ in range(60):
        argv, stdin = generator()
        expected = run_gnu(argv, stdin, tree)
        actual = run_ours(argv, stdin, tree)
        assert actual == expected, f"{argv!r} with input {stdin!r}"
