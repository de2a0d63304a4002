"""Wrong: maps the reader "r" but keeps the flag handshake: the reader cannot clear the flag."""

from runtime.textbook import (ALLOCATE_BLOCK, CREATE_ADDRESS_SPACE, LOAD, MAP, STORE, YIELD)

MAILBOX = 4096
FULL = MAILBOX + 8


def setup():
    writer_space, reader_space = CREATE_ADDRESS_SPACE(), CREATE_ADDRESS_SPACE()
    mailbox = ALLOCATE_BLOCK(4096, name="mailbox")
    MAP(writer_space, mailbox, 1, "rw")
    MAP(reader_space, mailbox, 1, "r")
    return writer_space, reader_space, None


def writer(shared, messages):
    for m in messages:
        while LOAD(FULL) == 1:
            YIELD()
        STORE(MAILBOX, m)
        STORE(FULL, 1)


def reader(shared, count):
    got = []
    for _ in range(count):
        while LOAD(FULL) == 0:
            YIELD()
        got.append(LOAD(MAILBOX))
        STORE(FULL, 0)
    return got
