"""Wrong: only the writer signals; it overwrites a message the reader has not taken yet."""

from runtime.textbook import (ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, AWAIT, CREATE_ADDRESS_SPACE, LOAD,
                              MAP, STORE)

MAILBOX = 4096


def setup():
    writer_space, reader_space = CREATE_ADDRESS_SPACE(), CREATE_ADDRESS_SPACE()
    mailbox = ALLOCATE_BLOCK(4096, name="mailbox")
    MAP(writer_space, mailbox, 1, "rw")
    MAP(reader_space, mailbox, 1, "r")
    return writer_space, reader_space, ALLOCATE_EVENTCOUNT("written")


def writer(written, messages):
    for m in messages:
        STORE(MAILBOX, m)
        ADVANCE(written)


def reader(written, count):
    got = []
    for i in range(count):
        AWAIT(written, i)
        got.append(LOAD(MAILBOX))
    return got
