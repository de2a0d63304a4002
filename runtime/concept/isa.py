"""The concept processor's instructions, their encoding, and a small assembler.

A handful of instructions, enough for the lecture's recipe (a thread is its
stack and frames) and for a thread that counts and YIELDs:

    PUSH k      push the constant k                    sp <- sp - 8; [sp] <- k
    DROP        pop a word and forget it               sp <- sp + 8
    LOCAL i     read word i of the current frame       acc <- [sp + 8i]
    SETLOCAL i  write it                               [sp + 8i] <- acc
    ADD k       acc <- acc + k
    JNZ a       jump if acc is not zero                if acc != 0: ip <- a
    JMP a       jump                                   ip <- a
    CALL a      call: push the return address          sp <- sp - 8; [sp] <- ip + 8; ip <- a
    RET         return: pop it into ip                 ip <- [sp]; sp <- sp + 8
    PRINT       write acc on the machine's console
    YIELD       trap to the thread manager: CALL into it, which saves sp,
                loads another thread's sp, and RETs (machine.py)
    EXIT        trap to the thread manager: this thread is done

The stack grows down and sp points at the word on top (the last pushed).
`acc` is a scratch register that a CALL or YIELD does not keep: what a
function needs across one lives in its frame (LOCAL / SETLOCAL), which is
the lecture's point -- the thread is its stack.

Encoding: one 64-bit word per instruction, opcode << 32 | (operand & 0xFFFFFFFF),
the operand a signed 32-bit number (an address, a constant or a frame slot).
Addresses are byte addresses of the vos address space the machine runs in.
"""

import re

OPCODES = ["HALT", "PUSH", "DROP", "LOCAL", "SETLOCAL", "ADD", "JNZ", "JMP", "CALL", "RET", "PRINT", "YIELD",
           "EXIT"]
OP = {name: i for i, name in enumerate(OPCODES)}
TAKES_OPERAND = {"PUSH", "LOCAL", "SETLOCAL", "ADD", "JNZ", "JMP", "CALL"}
TAKES_ADDRESS = {"JNZ", "JMP", "CALL"}
WORD = 8


class AssemblyError(ValueError):
    """A line of the program that does not assemble (its number and text say which)."""


def encode(opcode, operand=0):
    if not -(1 << 31) <= operand < (1 << 31):
        raise AssemblyError(f"operand {operand} does not fit in 32 bits")
    return OP[opcode] << 32 | (operand & 0xFFFFFFFF)


def decode(word):
    """(opcode name, operand) of an instruction word.  ValueError for a word
    that is no instruction (a processor that jumped into data)."""
    op, operand = word >> 32, word & 0xFFFFFFFF
    if not 0 <= op < len(OPCODES):
        raise ValueError(f"{word:#x} is not an instruction")
    if operand >= 1 << 31:
        operand -= 1 << 32
    return OPCODES[op], operand


def assemble(text, origin):
    """(words, labels) of a program written one instruction a line:

        label:              a name for the address of the next instruction
        OPCODE [operand]    operand: a number, or a label (its address)
        ; comment           anywhere on a line

    `origin` is the address of the first word.  AssemblyError names the line."""
    lines = []
    labels = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        while line:
            m = re.match(r"^([A-Za-z_]\w*):\s*(.*)$", line)
            if not m:
                break
            if m.group(1) in labels:
                raise AssemblyError(f"line {number}: label {m.group(1)!r} twice: {raw.strip()!r}")
            labels[m.group(1)] = origin + WORD * len(lines)
            line = m.group(2).strip()
        if line:
            lines.append((number, raw.strip(), line.split()))
    words = []
    for number, raw, parts in lines:
        name = parts[0].upper()
        if name not in OP:
            raise AssemblyError(f"line {number}: no instruction {parts[0]!r}: {raw!r}")
        if (name in TAKES_OPERAND) != (len(parts) == 2) or len(parts) > 2:
            want = "one operand" if name in TAKES_OPERAND else "no operand"
            raise AssemblyError(f"line {number}: {name} takes {want}: {raw!r}")
        operand = 0
        if len(parts) == 2:
            arg = parts[1]
            if re.fullmatch(r"[+-]?\d+", arg):
                operand = int(arg)
            elif arg in labels:
                operand = labels[arg]
            else:
                raise AssemblyError(f"line {number}: no label {arg!r}: {raw!r}")
        words.append(encode(name, operand))
    return words, labels


def disassemble(word, labels=None):
    """An instruction word as text, addresses by their label where there is one."""
    name, operand = decode(word)
    if name not in TAKES_OPERAND:
        return name
    if name in TAKES_ADDRESS and labels:
        for label, addr in labels.items():
            if addr == operand:
                return f"{name} {label}"
    return f"{name} {operand}"


__all__ = ["OPCODES", "encode", "decode", "assemble", "disassemble", "AssemblyError", "WORD"]
