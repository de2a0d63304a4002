"""The shell's parser: quotes, operators, $? and bash-like syntax errors."""

import pytest

from runtime.shell.parser import Command, Pipeline, ShellSyntaxError, parse


def argvs(line, status=0):
    return [[c.argv for c in p.commands] for p in parse(line, status)]


def test_pipeline_and_sequence():
    assert argvs("ls -la | grep cse ; echo done") == [[["ls", "-la"], ["grep", "cse"]], [["echo", "done"]]]


def test_operators_need_no_spaces():
    assert argvs("seq 10|grep 1;echo x") == [[["seq", "10"], ["grep", "1"]], [["echo", "x"]]]


def test_quotes_and_escapes():
    assert argvs("""echo 'a | b' "c \\"d\\" $?" e\\ f "g"'h'i""", 3) == [[["echo", "a | b", 'c "d" 3', "e f", "ghi"]]]


def test_single_quotes_keep_dollar():
    assert argvs("echo '$?' $?", 7) == [[["echo", "$?", "7"]]]


def test_redirections():
    (p,) = parse("sort < in.txt > out.txt")
    assert p.commands == [Command(["sort"], stdin="in.txt", stdout="out.txt")]
    (p,) = parse("echo hi >> log")
    assert p.commands == [Command(["echo", "hi"], stdout="log", append=True)]


def test_comments_and_empty_lines():
    assert parse("") == [] and parse("   ") == [] and parse("# nothing") == []
    assert argvs("echo a # b") == [[["echo", "a"]]]


def test_trailing_semicolon():
    assert parse("true;") == [Pipeline([Command(["true"])])]


@pytest.mark.parametrize("line", ["| grep x", "ls |", "ls | | wc", "ls >", "echo 'open", 'echo "open', "; ls", "< f"])
def test_syntax_errors(line):
    with pytest.raises(ShellSyntaxError):
        parse(line)
