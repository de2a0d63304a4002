"""The shell's command language: a small subset of sh.

    line      := pipeline (";" pipeline)* [";"]
    pipeline  := command ("|" command)*
    command   := (word | "<" word | ">" word | ">>" word)+

Words: single quotes keep everything literally; double quotes keep everything
but `\\"`, `\\\\`, `\\$` and the expansion `$?`; outside quotes a backslash
escapes the next character and `$?` expands to the last exit status (when
the pipeline runs, see expand()).  Adjacent
pieces join into one word (`"a"'b'c` is `abc`).  Errors raise ShellSyntaxError
with bash's wording, so that students recognise them.
"""

import dataclasses


class ShellSyntaxError(ValueError):
    """The line is not a valid command line."""


@dataclasses.dataclass
class Command:
    argv: list
    stdin: str | None = None     # path after "<"
    stdout: str | None = None    # path after ">" or ">>"
    append: bool = False         # ">>"


@dataclasses.dataclass
class Pipeline:
    commands: list


_OPERATORS = (">>", "|", "<", ">", ";")
STATUS = "\0$?"  # stands for `$?` until the pipeline runs (a NUL can never be in an argument)


def expand(commands, status):
    """Replace `$?` in the commands' words by `status` (just before they run:
    in `false; echo $?` the second pipeline sees the first one's status)."""
    s = str(status)
    for c in commands:
        c.argv = [w.replace(STATUS, s) for w in c.argv]
        c.stdin = c.stdin and c.stdin.replace(STATUS, s)
        c.stdout = c.stdout and c.stdout.replace(STATUS, s)
    return commands


def tokenize(line, last_status=None):
    """[(kind, text)] with kind "word" or "op"."""
    tokens, word, in_word, i, n = [], [], False, 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t\n":
            if in_word:
                tokens.append(("word", "".join(word)))
                word, in_word = [], False
            i += 1
        elif c == "#" and not in_word:
            break
        elif any(line.startswith(op, i) for op in _OPERATORS):
            if in_word:
                tokens.append(("word", "".join(word)))
                word, in_word = [], False
            op = next(op for op in _OPERATORS if line.startswith(op, i))
            tokens.append(("op", op))
            i += len(op)
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unexpected EOF while looking for matching `''")
            word.append(line[i + 1:end])
            in_word, i = True, end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("unexpected EOF while looking for matching `\"'")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '"\\$':
                    word.append(line[i + 1])
                    i += 2
                elif line.startswith("$?", i):
                    word.append(STATUS if last_status is None else str(last_status))
                    i += 2
                else:
                    word.append(c)
                    i += 1
            in_word = True
        elif c == "\\":
            if i + 1 < n:
                word.append(line[i + 1])
            in_word, i = True, i + 2
        elif line.startswith("$?", i):
            word.append(STATUS if last_status is None else str(last_status))
            in_word, i = True, i + 2
        else:
            word.append(c)
            in_word, i = True, i + 1
    if in_word:
        tokens.append(("word", "".join(word)))
    return tokens


def parse(line, last_status=None):
    """The pipelines of a command line, in order.  [] for an empty line.
    `$?` becomes last_status, or stays a marker for expand() if it is None."""
    pipelines, commands, cmd = [], [], None
    tokens = tokenize(line, last_status)
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "word":
            cmd = cmd or Command([])
            cmd.argv.append(text)
        elif text in ("<", ">", ">>"):
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "word":
                after = tokens[i + 1][1] if i + 1 < len(tokens) else "newline"
                raise ShellSyntaxError(f"syntax error near unexpected token `{after}'")
            cmd = cmd or Command([])
            if text == "<":
                cmd.stdin = tokens[i + 1][1]
            else:
                cmd.stdout, cmd.append = tokens[i + 1][1], text == ">>"
            i += 1
        else:  # "|" or ";"
            if cmd is None or not cmd.argv:
                raise ShellSyntaxError(f"syntax error near unexpected token `{text}'")
            commands.append(cmd)
            cmd = None
            if text == ";":
                pipelines.append(Pipeline(commands))
                commands = []
            elif i + 1 >= len(tokens):
                raise ShellSyntaxError("syntax error: unexpected end of line after `|'")
        i += 1
    if cmd is not None:
        if not cmd.argv:
            raise ShellSyntaxError("syntax error: a redirection without a command")
        commands.append(cmd)
    if commands:
        pipelines.append(Pipeline(commands))
    return pipelines
